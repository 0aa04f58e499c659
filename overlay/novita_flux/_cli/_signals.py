"""Ctrl-C and SIGTERM while money is on the wire: the first is noted and the work in flight is let
finish (it is paid for once the API's task runs, whether or not we wait for its answer), the
second is acted on at once. Both `generate` and `batch` keep this rule; what "at once" means is
theirs to say."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

Handler = Callable[[signal.Signals], None]
SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred(first: Handler, again: Handler) -> Iterator[None]:
    """Within the block, the first SIGINT or SIGTERM calls `first` and the next ones `again`
    (which may raise, e.g. KeyboardInterrupt, to leave the block). Outside the main thread,
    where Python delivers no signal, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal seen
        seen += 1
        (first if seen == 1 else again)(signal.Signals(signum))

    previous = {number: signal.signal(number, handle) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM, wherever no step has taken signals in hand, as Ctrl-C: the command stops with
    its one line and status 130 instead of vanishing (a `deferred` block inside takes over)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
