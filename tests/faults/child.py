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
        # Raised in this thread, not sent to the process: a process-directed signal may land on
        # another thread (the mock server's, the progress bar's), whose CPU time a busy machine
        # delays, and the main thread would then take it steps later than the one under test
        # (seen in CI-like runs: the run finished with 0 after "write.lock SIGINT").
        if fault == "INTx2":
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)
            return
        signal.raise_signal(getattr(signal, fault))

    _faultpoints.install(hook)


if __name__ == "__main__":
    point, nth, fault, separator, *argv = sys.argv[1:]
    assert separator == "--"
    arm(point, int(nth), fault)
    sys.exit(main(argv))
