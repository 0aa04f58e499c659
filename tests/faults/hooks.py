"""Fault hooks for the named steps (novita_flux._faultpoints), in this process."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator

from novita_flux import _faultpoints


def full_disk(point: str) -> Exception:
    """The error a full disk gives at this point: SQLite's own for the ledger, ENOSPC elsewhere."""
    if point == "write.ledger":
        return sqlite3.OperationalError("database or disk is full")
    return OSError(errno.ENOSPC, "No space left on device")


@contextlib.contextmanager
def installed(hook: Callable[[str], None]) -> Iterator[None]:
    previous = _faultpoints.install(hook)
    try:
        yield
    finally:
        _faultpoints.install(previous)


@contextlib.contextmanager
def census() -> Iterator[Counter[str]]:
    """How many times each point is reached within the block."""
    counts: Counter[str] = Counter()
    with installed(lambda point: counts.update([point])):
        yield counts


@contextlib.contextmanager
def failing(
    point: str, nth: int, error: Callable[[str], BaseException] = full_disk
) -> Iterator[list[int]]:
    """Raise `error(point)` at the nth time `point` is reached; the list says whether it was
    (one element once it fired)."""
    reached = 0
    fired: list[int] = []

    def hook(name: str) -> None:
        nonlocal reached
        if name != point:
            return
        reached += 1
        if reached == nth:
            fired.append(reached)
            raise error(point)

    with installed(hook):
        yield fired
