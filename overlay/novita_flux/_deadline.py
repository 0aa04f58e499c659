"""A deadline for a whole HTTP exchange in the sync client: connect, send, headers and body.

httpx's timeouts bound each network operation, not the exchange: a server that drips a byte
every half second never trips a 60 s read timeout and can hold a call open for hours. The async
client wraps each exchange in `asyncio.timeout`. A sync client cannot be interrupted from
outside, so its own connection pools get a network backend whose every read, write and connect
waits at most until the deadline of the exchange running on that thread.

That backend is given to httpcore's pool through its public `network_backend=` argument, and the
pool is carried by a transport of our own (`DeadlineTransport`, what httpx's HTTPTransport does
for a request, written against httpx's and httpcore's public API), so no private attribute of
either is reached into. An injected sync http_client is the caller's own and is left as it is:
there, each read is bounded by the time left when the exchange began, and a download checks the
deadline between chunks.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

import httpcore
import httpx

# Monotonic time by which the exchange running in this context must be over; None: no deadline.
_deadline: ContextVar[float | None] = ContextVar("novita_flux_deadline", default=None)


class _Exchange:
    """The block of one exchange; its value is the monotonic time it must end by. A class, not
    a generator-based context manager: it is entered on every call."""

    __slots__ = ("_at", "_token")

    def __init__(self, at: float | None) -> None:
        self._at = at

    def __enter__(self) -> float | None:
        self._token: Token[float | None] = _deadline.set(self._at)
        return self._at

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _deadline.reset(self._token)


def deadline_in(seconds: float | None) -> _Exchange:
    """Run the block as one exchange that must end within `seconds` (None: no limit)."""
    return _Exchange(None if seconds is None else time.monotonic() + seconds)


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


# httpcore's errors and the httpx errors that stand for them share their names.
_HTTPX_ERRORS: dict[type[BaseException], type[httpx.TransportError] | None] = {}


def _httpx_error(kind: type[BaseException]) -> type[httpx.TransportError] | None:
    """The httpx error that stands for an httpcore one, as httpx's own transport maps it (the
    most specific: ReadTimeout, not TimeoutException); None for an error not httpcore's."""
    if kind not in _HTTPX_ERRORS:
        found = None
        for base in kind.__mro__:
            if base.__module__.split(".")[0] == "httpcore":
                candidate = getattr(httpx, base.__name__, None)
                if isinstance(candidate, type) and issubclass(candidate, httpx.TransportError):
                    found = candidate
                    break
        _HTTPX_ERRORS[kind] = found
    return _HTTPX_ERRORS[kind]


@contextmanager
def _as_httpx() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        mapped = _httpx_error(type(error))
        if mapped is None:
            raise
        raise mapped(str(error)) from error


class _Body(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's HTTPTransport for our own pools (plain HTTP/1.1, no proxy, `limits`), over an
    httpcore pool whose network backend holds every operation to the exchange's deadline."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_Backend(httpcore.SyncBackend()),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx():
            answer = self._pool.handle_request(core)
        assert isinstance(answer.stream, Iterable)
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_Body(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        self._pool.close()
