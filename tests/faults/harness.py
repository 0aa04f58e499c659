"""Running the commands under faults, and keeping their history for the invariant.

A `History` belongs to one reference server and one output directory. `cli()` runs a command
in this process (as a user would, through `main`), or, with a fault armed at a named step, in a
process of its own (tests/faults/child.py), and records what it printed and what the server saw
meanwhile. `violations()` puts the whole history to the money invariant.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from novita_flux._cli import main
from novita_flux.testing import ReferenceServer
from tests.faults import invariant
from tests.faults.invariant import Run, Window

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_STATUSES = (0, 1, 2, 130)
SETTLE = 0.15  # seconds for the server to finish what a killed client left on the wire


def lines_file(path: Path, requests: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(request) + "\n" for request in requests))
    return path


@contextlib.contextmanager
def environment(server: ReferenceServer) -> Iterator[dict[str, str]]:
    """NOVITA_API_KEY and NOVITA_BASE_URL pointing at the server, for this process and its
    children."""
    wanted = {"NOVITA_API_KEY": server.api_key, "NOVITA_BASE_URL": server.url}
    before = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    try:
        yield {**os.environ}
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class History:
    def __init__(self, server: ReferenceServer, directory: Path) -> None:
        self.server = server
        self.directory = directory
        self.runs: list[Run] = []

    def cli(self, *argv: str, fault: tuple[str, int, str] | None = None) -> Run:
        mark = Window.mark(self.server)
        with environment(self.server) as env:
            if fault is None:
                status, out, err, abrupt = _in_process(list(argv))
            else:
                status, out, err, abrupt = _in_child(list(argv), fault, env)
        if fault is not None:
            time.sleep(SETTLE)
        run = Run(tuple(argv), Window.since(self.server, mark), status, out, err, abrupt)
        self.runs.append(run)
        return run

    def violations(self, allowed: int | None = None) -> list[str]:
        return invariant.violations(self.runs, self.directory, allowed=allowed)


def _in_process(argv: list[str]) -> tuple[int | None, str, str, bool]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue(), False


def _in_child(
    argv: list[str], fault: tuple[str, int, str], env: dict[str, str]
) -> tuple[int | None, str, str, bool]:
    point, nth, kind = fault
    command = [sys.executable, "-m", "tests.faults.child", point, str(nth), kind, "--", *argv]
    env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])}
    finished = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    killed = finished.returncode < 0
    abrupt = killed or "stopped at once" in finished.stderr
    status = None if killed else finished.returncode
    return status, finished.stdout, finished.stderr, abrupt


def assert_spoke_plainly(run: Run) -> None:
    """A documented exit status (or killed), and never a traceback."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.status is None or run.status in DOCUMENTED_STATUSES, (run.status, run.stderr)
