"""The named steps of the money paths, where the test suite interrupts a run on purpose.

Every step on the way from a request to a saved image at which a process can die, a disk can fill
or a caller can cancel is named here, once. The code calls `reach(name)` as it passes each step;
with no hook installed (always, outside the fault tests) that is one comparison.

The fault tests (tests/faults/) install a hook that, at the n-th time a step is reached, kills the
process, sends it SIGINT or SIGTERM, or raises the error a full disk gives, then check on the next
run that nothing was paid twice and nothing paid for was lost. They fail when a step is named here
without being reached by them, or reached in the code without being named here: a new step on a
money path cannot go untested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

STEPS: Final[dict[str, str]] = {
    # The library's flows: under generate(), generate_many(), save(), and both commands.
    "api.sending": "the API request is about to go on the wire",
    "api.answered": "the API's answer has been read; nothing has been done with it yet",
    "image.downloading": "an image's download has begun: its bytes are arriving",
    "image.downloaded": "an image is whole in its temporary file, not yet under its name",
    "image.published": "an image is in place under its name; its sidecar is not written yet",
    # novita-flux batch.
    "batch.planned": "every line is checked, priced and recorded; nothing is sent yet",
    "batch.sending": "the ledger says the request is on its way; it has not left yet",
    "batch.answered": "the API's answer is in hand, not yet recorded",
    "batch.paid": "the answer and its links are recorded; no image is saved yet",
    "batch.saved": "every image of the request is saved; the ledger does not say so yet",
    "manifest.written": "the manifest is in its temporary file, not yet in place",
    "gallery.written": "the gallery page is in its temporary file, not yet in place",
    # novita-flux generate.
    "generate.answered": "the generation is in hand; no image is saved yet",
    "generate.saved": "every image and sidecar is saved; no result is printed yet",
}

# Writes, where a full disk shows (ENOSPC, or SQLite's "database or disk is full").
WRITES: Final[dict[str, str]] = {
    "write.ledger": "a ledger transaction is about to commit",
    "write.journal": "a record is about to be appended to the ledger's journal",
    "write.image": "a chunk of an image is about to be written to its temporary file",
    "write.file": "a small file (sidecar, manifest, gallery) is about to be written",
    "write.lock": "the batch directory's lock file is about to get our pid",
}

POINTS: Final[dict[str, str]] = STEPS | WRITES

Hook = Callable[[str], None]
_hook: Hook | None = None


def reach(point: str) -> None:
    """Say that the step `point` (a key of POINTS) is reached."""
    if _hook is not None:
        _hook(point)


def install(hook: Hook | None) -> Hook | None:
    """Call `hook` at every point from now on (None: at none); return the hook it replaces."""
    global _hook
    previous, _hook = _hook, hook
    return previous
