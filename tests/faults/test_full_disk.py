"""The disk filling up at every write of `batch` and `generate`, and a reader that closes stdout.

Each write the commands make (novita_flux._faultpoints.WRITES) is struck, at every time a clean run
reaches it, with the error a full disk gives there (ENOSPC; SQLite's "database or disk is full"
for the ledger). The run must stop with a line that says so and a documented status, never a
traceback; then, the disk freed, the same command carries on to the end without paying twice or
losing what was paid for."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from novita_flux.testing import ReferenceServer
from tests.faults.conftest import REQUESTS, batch_argv, generate_argv
from tests.faults.harness import ROOT, History, assert_spoke_plainly, environment, lines_file
from tests.faults.hooks import failing
from tests.faults.invariant import Disk, Run, Window

pytestmark = pytest.mark.slow

# The writes each command makes (test_coverage holds these to the census of a clean run).
BATCH_WRITES = ("write.file", "write.image", "write.journal", "write.ledger", "write.lock")
GENERATE_WRITES = ("write.file", "write.image")
FULL = ("No space left on device", "disk is full")


def _said_the_disk_is_full(run: Run) -> bool:
    return any(any(words in line for words in FULL) for line in run.stderr.splitlines())


def _saved(out: Path) -> int:
    return sum(
        1
        for sidecar in out.glob("*.png.json")
        if sidecar.with_suffix("").exists() and json.loads(sidecar.read_text()).get("task_id")
    )


@pytest.mark.parametrize("point", BATCH_WRITES)
def test_a_full_disk_at_any_write_of_a_batch_costs_nothing_and_the_next_run_carries_on(
    point: str, server: ReferenceServer, batch_census: Counter[str], tmp_path: Path
) -> None:
    source = lines_file(tmp_path / "in.jsonl", REQUESTS)
    assert batch_census[point] > 0
    for nth in range(1, batch_census[point] + 1):
        out = tmp_path / f"{point}-{nth}"
        history = History(server, out)
        with failing(point, nth) as fired:
            struck = history.cli(*batch_argv(source, out))
        assert fired, f"{point}#{nth} was never reached"
        assert_spoke_plainly(struck)
        assert struck.status in (1, 2), (point, nth, struck.stderr)
        assert _said_the_disk_is_full(struck), (point, nth, struck.stderr)
        if struck.status == 2:
            assert struck.window.arrived == (), "exit 2 says nothing was sent"
        resumed = history.cli(*batch_argv(source, out))
        assert_spoke_plainly(resumed)
        assert resumed.status == 0, (point, nth, resumed.stderr)
        states = Counter(r.state for r in Disk.read(out).records if r.source == "ledger")
        assert states == Counter(saved=len(REQUESTS)), (point, nth, states, resumed.stderr)
        assert history.violations() == [], (point, nth)
        assert not list(out.glob(".novita-*.part")), "a staged file was left behind"


@pytest.mark.parametrize("point", GENERATE_WRITES)
def test_a_full_disk_at_any_write_of_generate_never_loses_the_paid_call(
    point: str, server: ReferenceServer, generate_census: Counter[str], tmp_path: Path
) -> None:
    assert generate_census[point] > 0
    for nth in range(1, generate_census[point] + 1):
        out = tmp_path / f"{point}-{nth}"
        history = History(server, out)
        with failing(point, nth) as fired:
            struck = history.cli(*generate_argv(out))
        assert fired, f"{point}#{nth} was never reached"
        assert_spoke_plainly(struck)
        assert _said_the_disk_is_full(struck), (point, nth, struck.stderr)
        if struck.status == 0:  # only the call's own record failed: every image is saved
            assert _saved(out) == 2, (point, nth, struck.stderr)
        elif struck.status == 2:
            assert struck.window.arrived == (), "exit 2 says nothing was sent"
        else:
            assert struck.status == 1, (point, nth, struck.stderr)
        # What the failed run paid for is on disk (its call record) or on stderr, and the same
        # command, run again, saves it without paying again.
        assert history.violations() == [], (point, nth, struck.stderr)
        complete = struck.window.billed and not list(out.glob(".novita-flux-call-*.json"))
        if complete:  # only the gallery or the call's own record failed
            assert _saved(out) == 2, (point, nth, struck.stderr)
            continue  # and the same command again would be a new call
        rerun = history.cli(*generate_argv(out))
        assert_spoke_plainly(rerun)
        assert rerun.status == 0, (point, nth, rerun.stderr)
        assert _saved(out) == 2, (point, nth, rerun.stderr)
        sent_again = len(rerun.window.arrived)
        assert sent_again == (0 if struck.window.billed else 1), (point, nth, rerun.stderr)
        assert history.violations() == [], (point, nth)
        assert list(out.glob(".novita-flux-call-*.json")) == []


def test_a_reader_that_closes_stdout_stops_the_batch_in_one_line_and_loses_nothing(
    server: ReferenceServer, tmp_path: Path
) -> None:
    """`novita-flux batch ... --json | head -1`: the first result is read, then the pipe is
    closed. The batch stops sending, says why in one line, and the next run carries on."""
    source = lines_file(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out"
    history = History(server, out)
    argv = batch_argv(source, out, "--json")
    mark = Window.mark(server)
    with environment(server) as env:
        process = subprocess.Popen(
            [sys.executable, "-m", "novita_flux", *argv],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        first = process.stdout.readline()  # `head -1`
        process.stdout.close()
        err = process.stderr.read() if process.stderr else ""
        status = process.wait(timeout=60)
    run = Run(argv, Window.since(server, mark), status, first, err)
    history.runs.append(run)
    assert json.loads(first)["task_id"]
    assert_spoke_plainly(run)
    assert "BrokenPipeError" not in err
    assert status in (0, 1), err  # 1: the batch stopped before its end
    resumed = history.cli(*batch_argv(source, out))
    assert resumed.status == 0, resumed.stderr
    states = Counter(r.state for r in Disk.read(out).records if r.source == "ledger")
    assert states == Counter(saved=len(REQUESTS)), (states, resumed.stderr)
    assert history.violations() == []
