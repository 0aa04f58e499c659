"""Every step of `batch` and `generate` x every way a process is stopped: SIGKILL, SIGINT, SIGTERM
and a double Ctrl-C, each struck at a named step (novita_flux._faultpoints) in a process of its
own. After each, the command is run again as a user would, and the whole history must keep the
money invariant: nothing sent twice unasked, nothing paid for lost."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from novita_flux._faultpoints import POINTS
from novita_flux.testing import ReferenceServer
from tests.faults.conftest import REQUESTS, batch_argv, generate_argv, middle
from tests.faults.harness import History, assert_spoke_plainly, lines_file
from tests.faults.invariant import Disk

pytestmark = pytest.mark.slow

STOPS = ("SIGKILL", "SIGINT", "SIGTERM", "INTx2")
# The steps only `generate` reaches; every other step is a batch's (test_coverage checks both
# against the census, so a step reached by neither fails there).
GENERATE_ONLY = frozenset({"generate.answered", "generate.saved"})
BATCH_ONLY = frozenset(
    {"batch.planned", "batch.sending", "batch.answered", "batch.paid", "batch.saved",
     "manifest.written", "write.ledger", "write.journal", "write.lock"}
)  # fmt: skip
BATCH_POINTS = sorted(set(POINTS) - GENERATE_ONLY)
GENERATE_POINTS = sorted(set(POINTS) - BATCH_ONLY)


def ledger_states(out: Path) -> Counter[str]:
    return Counter(r.state for r in Disk.read(out).records if r.source == "ledger")


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("point", BATCH_POINTS)
def test_a_batch_stopped_at_any_step_resumes_without_paying_twice_or_losing_a_paid_image(
    point: str, stop: str, server: ReferenceServer, batch_census: Counter[str], tmp_path: Path
) -> None:
    source = lines_file(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out"
    history = History(server, out)
    nth = middle(batch_census[point])
    struck = history.cli(*batch_argv(source, out), fault=(point, nth, stop))
    assert f"[fault] {point}#{nth} {stop}" in struck.stderr, f"{point} was never reached"
    assert_spoke_plainly(struck)
    if stop == "SIGKILL":
        assert struck.status is None
    else:
        assert struck.status == 130, struck.stderr
    resumed = history.cli(*batch_argv(source, out))
    assert_spoke_plainly(resumed)
    assert history.violations() == []
    states = ledger_states(out)
    assert set(states) <= {"saved", "unknown"}, states  # the batch carried on to its end
    if not struck.abrupt:  # a handled signal lets what is on the wire finish and be recorded
        assert states == Counter(saved=len(REQUESTS)), (states, struck.stderr)
    again = history.cli(*batch_argv(source, out, "--resend-unknown"))
    assert_spoke_plainly(again)
    assert again.status == 0, again.stderr
    assert ledger_states(out) == Counter(saved=len(REQUESTS))
    assert history.violations() == []


@pytest.mark.parametrize("stop", STOPS)
@pytest.mark.parametrize("point", GENERATE_POINTS)
def test_generate_stopped_at_any_step_never_loses_the_call_it_paid_for(
    point: str, stop: str, server: ReferenceServer, generate_census: Counter[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    history = History(server, out)
    nth = middle(generate_census[point])
    struck = history.cli(*generate_argv(out), fault=(point, nth, stop))
    assert f"[fault] {point}#{nth} {stop}" in struck.stderr, f"{point} was never reached"
    assert_spoke_plainly(struck)
    if stop in ("SIGINT", "SIGTERM"):  # noted, and the paid call let finish
        assert struck.status == 130, struck.stderr
        assert saved_images(out) == 2
    left = list(out.glob(".novita-flux-call-*.json"))
    asks = 1
    if left:  # stopped half-way: the same command again, as a user would
        rerun = history.cli(*generate_argv(out))
        assert_spoke_plainly(rerun)
        if rerun.status == 2:  # the call may have been billed with no answer: not sent unasked
            assert "--resend-unknown" in rerun.stderr
            assert "may have been billed" in rerun.stderr
            rerun = history.cli(*generate_argv(out, "--resend-unknown"))
            asks += 1
        assert rerun.status == 0, rerun.stderr
        assert saved_images(out) == 2
    assert history.violations(allowed=asks) == []
    assert list(out.glob(".novita-flux-call-*.json")) == []


def saved_images(out: Path) -> int:
    return sum(
        1
        for sidecar in out.glob("*.png.json")
        if sidecar.with_suffix("").exists() and json.loads(sidecar.read_text()).get("task_id")
    )
