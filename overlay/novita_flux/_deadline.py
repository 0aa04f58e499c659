"""A deadline for a whole HTTP exchange in the sync client: connect, send, headers and body.

httpx's timeouts bound each network operation, not the exchange: a server that drips a byte
every half second never trips a 60 s read timeout and can hold a call open for hours. The async
client wraps each exchange in `asyncio.timeout`. A sync client cannot be interrupted from
outside, so its own connection pools get a network backend whose every read, write and connect
waits at most until the deadline of the exchange running on that thread.

That backend and the transport that carries it are in _transport, imported with the first sync
client (httpx itself imports httpcore no sooner). An injected sync http_client is the caller's
own and is left as it is: there, each read is bounded by the time left when the exchange began,
and a download checks the deadline between chunks.
"""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from types import TracebackType

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


def left() -> float | None:
    """Seconds left of the exchange running in this context (<= 0: none); None: no deadline."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()


def exchange_seconds(timeout: httpx.Timeout) -> float | None:
    """How long one exchange may take in all: the longest of its phases' timeouts, since with a
    plain number (the usual case) every phase has the same one. None when any phase is
    unbounded."""
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    if any(phase is None for phase in phases):
        return None
    return max(phase for phase in phases if phase is not None)
