"""The transport of the sync client's own pools: every read, write and connect of an exchange
waits at most until the exchange's deadline (_deadline says why a sync client needs this).

The network backend that does it is given to httpcore's pool through its public
`network_backend=` argument, and the pool is carried by a transport of our own doing what
httpx's HTTPTransport does for a request, written against httpx's and httpcore's public API:
no private attribute of either is reached into.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import httpx

from novita_flux._deadline import left


def clamp(
    timeout: float | None, late: type[httpcore.TimeoutException] = httpcore.ReadTimeout
) -> float | None:
    """The operation's own timeout, cut to what is left of the exchange's deadline; `late` is
    raised when nothing is left (a connect that never started cannot have been billed)."""
    remaining = left()
    if remaining is None:
        return timeout
    if remaining <= 0:
        raise late("the whole exchange took longer than its timeout")
    return remaining if timeout is None else min(timeout, remaining)


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
