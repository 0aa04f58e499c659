"""A deadline for a whole HTTP exchange in the sync client: connect, send, headers and body.

httpx's timeouts bound each network operation, not the exchange: a server that drips a byte
every half second never trips a 60 s read timeout and can hold a call open for hours. The async
client wraps each exchange in `asyncio.timeout`. A sync client cannot be interrupted from
outside, so its own connection pools get a network backend whose every read, write and connect
waits at most until the deadline of the exchange running on that thread.

That backend sits behind httpx's transport, reached through one private attribute of
httpcore's pool (`_network_backend`, unchanged since httpcore 0.17); `install` says whether it
took, and the tests fail if it stops taking. An injected sync http_client is the caller's own and
is left as it is: there, each read is bounded by the time left when the exchange began, and a
download checks the deadline between chunks.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

# Monotonic time by which the exchange running in this context must be over; None: no deadline.
_deadline: ContextVar[float | None] = ContextVar("novita_flux_deadline", default=None)


@contextmanager
def deadline_in(seconds: float | None) -> Iterator[float | None]:
    """Run the block as one exchange that must end within `seconds` (None: no limit)."""
    at = None if seconds is None else time.monotonic() + seconds
    token = _deadline.set(at)
    try:
        yield at
    finally:
        _deadline.reset(token)


def clamp(
    timeout: float | None, late: type[httpcore.TimeoutException] = httpcore.ReadTimeout
) -> float | None:
    """The operation's own timeout, cut to what is left of the exchange's deadline; `late` is
    raised when nothing is left (a connect that never started cannot have been billed)."""
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise late("the whole exchange took longer than its timeout")
    return left if timeout is None else min(timeout, left)


def exchange_seconds(timeout: httpx.Timeout) -> float | None:
    """How long one exchange may take in all: the longest of its phases' timeouts, since with a
    plain number (the usual case) every phase has the same one. None when any phase is
    unbounded."""
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    if any(phase is None for phase in phases):
        return None
    return max(phase for phase in phases if phase is not None)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, clamp(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        timeout = clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(
            self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = clamp(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def install(transport: httpx.HTTPTransport) -> bool:
    """Make every connection of this transport honour the exchange deadline; False if httpcore
    no longer lets us (the deadline then holds only between chunks)."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        return False
    if not isinstance(backend, _Backend):
        pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
    return True


def installed(transport: httpx.BaseTransport) -> bool:
    pool = getattr(transport, "_pool", None)
    return isinstance(getattr(pool, "_network_backend", None), _Backend)
