"""Whole histories of one batch directory, explored by hypothesis: runs, runs killed or
interrupted at a random step, a full disk at a random write, the input edited, reordered or
extended, any file the batch wrote damaged, resumes and `--resend-unknown`, in any order. The
money invariant (tests/faults/invariant.py) is checked after every step, and at the end the
batch, run once more, finishes every request.

Quick under the `ci` profile (a few short histories); `make test-deep` explores many long ones.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from novita_flux._faultpoints import POINTS, WRITES
from novita_flux.testing import ReferenceServer
from tests.faults.conftest import batch_argv
from tests.faults.harness import History, assert_spoke_plainly, lines_file
from tests.faults.hooks import failing
from tests.faults.invariant import Disk, Run
from tests.faults.test_damaged_files import DAMAGES, FILES, damage
from tests.faults.test_process_faults import BATCH_POINTS

pytestmark = pytest.mark.slow

DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"
HISTORIES = settings(
    max_examples=40 if DEEP else 3,
    stateful_step_count=16 if DEEP else 6,
    deadline=None,
)
STOPS = ("SIGKILL", "SIGINT", "SIGTERM", "INTx2")


def _request(number: int, images: int = 1) -> dict[str, Any]:
    return {"prompt": f"history {number}", "width": 64, "height": 64, "steps": 1,
            "seed": 500 + number, "image_num": images}  # fmt: skip


class BatchHistory(RuleBasedStateMachine):
    server: ReferenceServer  # set by the test before the machine runs

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="novita-history-"))
        self.out = self.root / "out"
        self.source = self.root / "in.jsonl"
        self.history = History(self.server, self.out)
        self.requests: list[dict[str, Any]] = []
        self.next_number = 0

    @initialize(count=st.integers(1, 4))
    def write_input(self, count: int) -> None:
        for _ in range(count):
            self._add()
        self._write()

    # --- what a user does to the input ---

    @rule(images=st.integers(1, 2))
    def extend_the_input(self, images: int) -> None:
        self._add(images)
        self._write()

    @rule(seed=st.integers(0, 2**16))
    def reorder_the_input(self, seed: int) -> None:
        random.Random(seed).shuffle(self.requests)
        self._write()

    @rule(data=st.data())
    def edit_a_line(self, data: st.DataObject) -> None:
        at = data.draw(st.integers(0, len(self.requests) - 1))
        self.requests[at] = _request(self.next_number)  # a new request in its place
        self.next_number += 1
        self._write()

    # --- runs ---

    @rule()
    def run(self) -> None:
        self._check(self.history.cli(*batch_argv(self.source, self.out)), stopped=False)

    @rule()
    def resend_unknown(self) -> None:
        argv = batch_argv(self.source, self.out, "--resend-unknown")
        self._check(self.history.cli(*argv), stopped=False)

    @rule(point=st.sampled_from(BATCH_POINTS), nth=st.integers(1, 3), stop=st.sampled_from(STOPS))
    def run_stopped_at_a_step(self, point: str, nth: int, stop: str) -> None:
        run = self.history.cli(*batch_argv(self.source, self.out), fault=(point, nth, stop))
        self._check(run, stopped=True)

    @rule(point=st.sampled_from(sorted(WRITES)), nth=st.integers(1, 6))
    def run_on_a_full_disk(self, point: str, nth: int) -> None:
        with failing(point, nth):
            run = self.history.cli(*batch_argv(self.source, self.out))
        self._check(run, stopped=True)

    # --- what happens to the files ---

    @rule(which=st.sampled_from(sorted(FILES)), how=st.sampled_from(sorted(DAMAGES)))
    def damage_a_file(self, which: str, how: str) -> None:
        if self.out.exists():
            damage(self.out, which, how)

    def teardown(self) -> None:
        try:
            if self.requests:
                # However the history went, the batch can be brought to its end.
                final = self.history.cli(*batch_argv(self.source, self.out, "--resend-unknown"))
                self._check(final, stopped=False)
                assert final.status == 0, final.stderr
                rows = [r for r in Disk.read(self.out).records if r.source == "ledger"]
                # Every line of the input saved, and of the requests that left it, none paid
                # for and not saved (what never left costs nothing, and stays as it is).
                saved = {r.body["prompt"] for r in rows if r.state == "saved"}
                assert {request["prompt"] for request in self.requests} <= saved, final.stderr
                states = Counter(r.state for r in rows)
                assert set(states) <= {"saved", "planned", "failed"}, (states, final.stderr)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _add(self, images: int = 1) -> None:
        self.requests.append(_request(self.next_number, images))
        self.next_number += 1

    def _write(self) -> None:
        lines_file(self.source, self.requests)

    def _check(self, run: Run, *, stopped: bool) -> None:
        assert_spoke_plainly(run)
        if not stopped:
            assert run.status in (0, 1), run.stderr  # 1: something earlier may have been billed
        assert self.history.violations() == [], run.stderr


def test_no_history_of_runs_faults_and_damage_pays_twice_or_loses_what_was_paid(
    server: ReferenceServer,
) -> None:
    assert set(BATCH_POINTS) <= set(POINTS)
    BatchHistory.server = server
    run_state_machine_as_test(BatchHistory, settings=HISTORIES)


def test_found_by_exploration_a_paid_request_whose_line_was_edited_still_gets_its_images(
    server: ReferenceServer, tmp_path: Path
) -> None:
    """The history hypothesis found: a request paid for, its image not saved (the disk was
    full), then its line edited. Its links expire: the next run fetches what was paid for,
    though the line now asks for something else (fetching costs nothing; it is never sent)."""
    source = lines_file(tmp_path / "in.jsonl", [_request(1)])
    out = tmp_path / "out"
    history = History(server, out)
    with failing("write.file", 1):
        assert history.cli(*batch_argv(source, out)).status == 1
    lines_file(source, [_request(2)])
    resumed = history.cli(*batch_argv(source, out))
    assert resumed.status == 0, resumed.stderr
    assert [body["prompt"] for body in resumed.window.arrived] == ["history 2"]
    states = Counter(r.state for r in Disk.read(out).records if r.source == "ledger")
    assert states == Counter(saved=2), (states, resumed.stderr)
    assert "(not in the input): saved" in resumed.stdout
    assert history.violations() == []
