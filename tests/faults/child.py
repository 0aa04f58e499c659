"""`novita-flux` in a process of its own, with one fault armed at one of its named steps:

    python -m tests.faults.child POINT NTH FAULT -- ARGV...

At the NTH time the step POINT (a key of novita_flux._faultpoints.POINTS) is reached, FAULT
happens: SIGKILL, SIGINT or SIGTERM raised in the thread that reached it (INTx2: SIGINT twice,
the second at once), or ENOSPC, the error a full disk gives there. The hook is installed before
the command runs and costs the command nothing else.
"""

from __future__ import annotations

import signal
import sys

from novita_flux import _faultpoints
from novita_flux._cli import main
from tests.faults.hooks import full_disk

FAULTS = ("SIGKILL", "SIGINT", "SIGTERM", "INTx2", "ENOSPC")


def arm(point: str, nth: int, fault: str) -> None:
    if point not in _faultpoints.POINTS or fault not in FAULTS:
        raise SystemExit(f"unknown point or fault: {point} {fault}")
    reached = 0

    def hook(name: str) -> None:
        nonlocal reached
        if name != point:
            return
        reached += 1
        if reached != nth:
            return
        sys.stderr.write(f"[fault] {point}#{nth} {fault}\n")
        sys.stderr.flush()
        if fault == "ENOSPC":
            raise full_disk(point)
        # Raised in this thread, not sent to the process: a process-directed signal may be taken
        # by another thread (the mock server's), and reach the main thread steps later.
        if fault == "INTx2":
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            return
        signal.raise_signal(getattr(signal, fault))

    _faultpoints.install(hook)


if __name__ == "__main__":
    point, nth, fault, separator, *argv = sys.argv[1:]
    assert separator == "--"
    # The Ctrl-C of a terminal's user: a suite started in the background (`make test &`, no job
    # control) hands its children SIGINT ignored, and Python then installs no handler for it, so
    # the cells that stop a command by SIGINT outside its own handlers ended with status 0.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    arm(point, int(nth), fault)
    sys.exit(main(argv))
