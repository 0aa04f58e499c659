"""A one-line progress display on stderr: images done of the total, failures, and the money spent
so far; redrawn in place on a terminal (at most ten times a second), a line every few seconds
elsewhere (CI logs, pipes), and the last state always.

Why not tqdm or rich: this is the whole of what the CLI needs (one counter line, thread-safe,
with failures and spend), in some sixty lines that cost nothing to import. Measured on this
project's 2-vCPU machine (fresh processes, Python 3.11, median of 15, over a bare interpreter's
25 ms): `import tqdm` takes ~230 ms and `import rich.progress` ~150 ms, more than the whole
CLI's own start-up (~100 ms), for features (nested bars, ETA smoothing, styled text) that a
batch bounded by an API's rate limit does not use; and either would be a new dependency.
"""

from __future__ import annotations

import sys
import threading
import time
from decimal import Decimal
from typing import Final, TextIO

from novita_flux._format import usd

_WIDTH: Final = 24
_TERMINAL_INTERVAL: Final = 0.1  # seconds between redraws in place
_LOG_INTERVAL: Final = 5.0  # seconds between lines in a log


class Progress:
    def __init__(
        self, total: int, unit: str, stream: TextIO | None = None, *, enabled: bool = True
    ) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.done = 0
        self.failed = 0
        self.spent = Decimal(0)
        self._lock = threading.Lock()
        self._live = self.stream.isatty()
        self._interval = _TERMINAL_INTERVAL if self._live else _LOG_INTERVAL
        self._last_drawn = float("-inf")
        self._drawn = False
        self._pending = False

    def advance(self, done: int = 1, *, failed: int = 0, spent: Decimal | None = None) -> None:
        with self._lock:
            self.done += done
            self.failed += failed
            if spent is not None:
                self.spent += spent
            self._pending = True
            now = time.monotonic()
            if now - self._last_drawn >= self._interval or self._finished():
                self._draw(now)

    def close(self) -> None:
        """Draw the last state (if it has not been) and end the line."""
        with self._lock:
            if self._pending:
                self._draw(time.monotonic())
            if self.enabled and self._live and self._drawn:
                self.stream.write("\n")
                self.stream.flush()

    def line(self) -> str:
        filled = _WIDTH * min(self.done, self.total) // max(self.total, 1)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        text = f"[{bar}] {self.done}/{self.total} {self.unit}"
        if self.failed:
            text += f", {self.failed} failed"
        if self.spent:
            text += f", ${usd(self.spent)} spent"
        return text

    def _finished(self) -> bool:
        return self.done + self.failed >= self.total

    def _draw(self, now: float) -> None:
        self._last_drawn = now
        self._pending = False
        if not self.enabled:
            return
        self.stream.write(("\r" if self._live else "") + self.line() + ("" if self._live else "\n"))
        self.stream.flush()
        self._drawn = True
