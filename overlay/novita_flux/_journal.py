"""The ledger's journal: `DIR/ledger.journal.jsonl`, every step of a request that touches money
since the last export, each line made durable before the request goes on (see _ledger).

Why a second record beside the ledger: the ledger is one file, and one file can be lost. A batch
killed with requests in flight, whose ledger is then damaged (a full disk, a careless `>`, a bad
page, a lost `-wal`), would forget that those requests may have been billed and send them again;
one whose answers were recorded but whose images were not saved yet would forget their links.
With each step in the journal too, no one damaged file makes a batch pay twice or lose what it
paid for. The journal only has to hold what the other records do not hold twice yet: once a run
has exported its manifest and checkpointed its ledger, everything is in both, and the journal is
emptied. So it stays as small as one run's work.

A line is the request's whole row as the step left it (JSON, ASCII only), so that reading it back
needs nothing else; a line that does not read (a torn last line, damage) is reported and skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from novita_flux._faultpoints import reach
from novita_flux._images import write_atomically
from novita_flux._states import State

JOURNAL_NAME: Final = "ledger.journal.jsonl"
_STATES: Final = frozenset(state.value for state in State)
_COUNTED: Final = ("seed", "image_num")  # the request body's fields the ledger has columns for

Reporter = Callable[[str], None]  # says one line of what was found and set aside


def parsed(text: str | bytes) -> Any:
    """JSON read from a file that may be damaged: ValueError for anything that is not JSON,
    nesting too deep for Python's parser included (its RecursionError would stop the reading of
    every record after it, and with it the ledger's opening, on every run)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def stamp() -> str:
    """The time now, for the name of a file set aside: sortable, to the microsecond."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


class Journal:
    """An append-only file of row snapshots; every append is on disk when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, row: dict[str, Any]) -> None:
        line = (json.dumps(row, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        reach("write.journal")
        written = os.write(self._fd, line)
        if written != len(line):  # a full disk can take part of a line: say so, never half-record
            raise OSError(f"{self.path.name}: only {written} of {len(line)} bytes were written")
        os.fsync(self._fd)

    def records(self, report: Reporter) -> Iterator[dict[str, Any]]:
        """Every row snapshot that reads, oldest first. The lines that do not read are kept as
        they were in `ledger.journal.jsonl.unread-<time>` before they are reported: the journal
        is emptied at the run's clean end, and a damaged line may still name a paid task."""
        try:
            source = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as error:
            report(f"{self.path.name}: cannot be read ({error.strerror or error}); skipped")
            return
        unread: list[tuple[int, str, bytes]] = []
        with source:
            for number, raw in enumerate(source, start=1):
                try:
                    record = parsed(raw.decode("ascii"))
                    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
                        raise ValueError("not a journal record")
                    if not isinstance(record.get("body"), dict):
                        raise ValueError("no request body")
                    # What the ledger's restore reads as it is: a line that parses but lacks
                    # one of them (a flipped byte) must be skipped, not stop the ledger opening.
                    if record.get("state") not in _STATES:
                        raise ValueError("no state of the ledger's")
                    if not all(isinstance(record["body"].get(n), int) for n in _COUNTED):
                        raise ValueError("no seed or image_num in its request body")
                    if not isinstance(record.get("sends", 0), int):
                        raise ValueError("its sends is not a count")
                except (UnicodeDecodeError, ValueError) as error:
                    if raw.strip(b"\x00 \t\r\n"):  # a file cut to zeros reads as nothing
                        unread.append((number, str(error), raw))
                    continue
                yield record
        if unread:
            aside = self.path.with_name(f"{self.path.name}.unread-{stamp()}")
            write_atomically(
                aside, (raw if raw.endswith(b"\n") else raw + b"\n" for *_, raw in unread)
            )
            for number, why, _ in unread:
                report(
                    f"{self.path.name} line {number}: cannot be read ({why}); skipped, and kept "
                    f"in {aside.name}"
                )

    def clear(self) -> None:
        """Empty the journal: everything in it is held twice elsewhere now."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
