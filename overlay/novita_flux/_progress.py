"""A one-line progress display on stderr: redrawn in place on a terminal, a line per update
elsewhere (CI logs, pipes)."""

from __future__ import annotations

import sys
import threading
from decimal import Decimal
from typing import TextIO

_WIDTH = 24


class Progress:
    def __init__(self, total: int, unit: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.failed = 0
        self.spent = Decimal(0)
        self._lock = threading.Lock()
        self._live = self.stream.isatty()
        self._drawn = False

    def advance(self, done: int = 1, *, failed: int = 0, spent: Decimal | None = None) -> None:
        with self._lock:
            self.done += done
            self.failed += failed
            if spent is not None:
                self.spent += spent
            self._draw()

    def close(self) -> None:
        with self._lock:
            if self._live and self._drawn:
                self.stream.write("\n")
                self.stream.flush()

    def line(self) -> str:
        filled = _WIDTH * min(self.done, self.total) // max(self.total, 1)
        bar = "#" * filled + "-" * (_WIDTH - filled)
        text = f"[{bar}] {self.done}/{self.total} {self.unit}"
        if self.failed:
            text += f", {self.failed} failed"
        if self.spent:
            text += f", ${self.spent} spent"
        return text

    def _draw(self) -> None:
        self.stream.write(("\r" if self._live else "") + self.line() + ("" if self._live else "\n"))
        self.stream.flush()
        self._drawn = True
