"""When to try again, and how long to wait first. Pure functions: no I/O but the two sleeps,
which tests replace to run without real waiting."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from novita_flux._constants import INITIAL_RETRY_DELAY, MAX_RETRY_AFTER, MAX_RETRY_DELAY
from novita_flux._spec import known_reasons

sleep = time.sleep

RETRY_AFTER = "Retry-After"


async def async_sleep(seconds: float) -> None:
    import asyncio  # here, not at the top: `import novita_flux` stays as light as httpx

    await asyncio.sleep(seconds)


# A generation is paid for: retry a transport failure only when the request cannot have
# reached the API. A read timeout or a broken answer may follow a billed generation, so those
# are raised, never repeated behind the caller's back.
UNSENT_ERRORS: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


# Failures that are over by themselves and known to have cost nothing: the spec marks which
# reasons were never billed; of those, these kinds pass with time.
_TRANSIENT_KINDS = frozenset({"rate_limit", "server"})


def retryable_answer(status: int, reason: str | None, retry_server_errors: bool) -> bool:
    """Whether an error answer to the paid POST may be sent again.

    408 and 429 never reached the task; a reason the spec marks `billed: never` that passes
    with time (RATE_LIMIT_EXCEEDED, SERVICE_NOT_AVAILABLE, CREATE_TASK_FAILED) cost nothing.
    Any other 5xx, a gateway's 502/504 included, may follow a task that ran and was billed: it
    is retried only when the caller opted in with retry_server_errors.
    """
    if status in (408, 429):
        return True
    known = known_reasons().get(reason) if reason is not None else None
    if known is not None and known.never_billed and known.kind in _TRANSIENT_KINDS:
        return True
    return retry_server_errors and status >= 500


def retryable_status(status: int) -> bool:
    """Whether an image download may be tried again: a GET of a link costs nothing."""
    return status in (408, 429) or status >= 500


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an answer's Retry-After asks to wait, if it says (any case of the name: an
    `httpx.Headers` finds it so)."""
    return parse_retry_after(headers.get(RETRY_AFTER))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    seconds: float
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def backoff(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5, 1, 2, 4, 8 s, each cut by up to a quarter."""
    delay = min(INITIAL_RETRY_DELAY * 2.0 ** min(attempt, 32), MAX_RETRY_DELAY)
    return delay * (1 - 0.25 * random.random())


def retry_delay(attempt: int, max_retries: int, retry_after: float | None) -> float | None:
    """Seconds to wait before retry number `attempt + 1`, or None to give up."""
    if attempt >= max_retries:
        return None
    if retry_after is None:
        return backoff(attempt)
    # The server named a wait longer than we are willing to sit through: better to raise
    # (the error carries retry_after) than to block the caller for minutes.
    return retry_after if retry_after <= MAX_RETRY_AFTER else None
