"""The four ways a user lost money in an hour of trying (issue 19), as they found them: no named
fault step, only what a user can do from outside."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from novita_flux import AsyncFluxSchnell, BatchResult
from novita_flux.testing import ReferenceServer
from tests.faults.harness import ROOT, History, assert_spoke_plainly, environment, lines_file
from tests.faults.invariant import Delivered, Run, Window, violations

pytestmark = pytest.mark.slow

REQUESTS = [
    {"prompt": f"user {number}", "width": 64, "height": 64, "steps": 1, "seed": number}
    for number in range(8)
]


def batch_argv(source: Path, out: Path) -> tuple[str, ...]:
    return ("batch", str(source), "--out", str(out), "--images-per-minute", "0",
            "--concurrency", "4")  # fmt: skip


@pytest.fixture
def fresh(server: ReferenceServer) -> ReferenceServer:
    server.faults.reset()
    return server


def test_an_emptied_ledger_beside_its_manifest_and_sidecars_bills_nothing_again(
    fresh: ReferenceServer, tmp_path: Path
) -> None:
    source = lines_file(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out"
    history = History(fresh, out)
    assert history.cli(*batch_argv(source, out)).status == 0
    (out / "ledger.sqlite3").write_bytes(b"")  # `: > out/ledger.sqlite3`
    again = history.cli(*batch_argv(source, out))
    assert again.status == 0, again.stderr
    assert again.window.arrived == ()  # nothing sent, so nothing billed twice
    assert "ledger.sqlite3 is damaged" in again.stderr
    assert history.violations() == []


def test_a_killed_batch_whose_ledger_is_then_lost_does_not_resend_what_was_in_flight(
    fresh: ReferenceServer, tmp_path: Path
) -> None:
    source = lines_file(tmp_path / "in.jsonl", REQUESTS)
    out = tmp_path / "out"
    fresh.faults.latency = 1.0  # each task runs a second: four are in flight at once
    history = History(fresh, out)
    mark = Window.mark(fresh)
    with environment(fresh) as env:
        command = [sys.executable, "-m", "novita_flux", *batch_argv(source, out)]
        process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while len(fresh.faults.billed) < 4:  # on the wire, billed: the tasks are running
            assert time.monotonic() < deadline, "the batch never sent"
            time.sleep(0.01)
        process.kill()
        _, err = process.communicate()
    time.sleep(1.2)  # the tasks run to their end on the server
    history.runs.append(
        Run(batch_argv(source, out), Window.since(fresh, mark), None, "", err, True)
    )
    fresh.faults.latency = 0.0
    # And the ledger is damaged: its file garbled, its -wal and -shm gone with the disk's crash.
    (out / "ledger.sqlite3").write_bytes(b"garbage " * 512)
    for suffix in ("-wal", "-shm"):
        (out / f"ledger.sqlite3{suffix}").unlink(missing_ok=True)
    in_flight = {body["prompt"] for _, body in history.runs[0].window.billed}
    resumed = history.cli(*batch_argv(source, out))
    assert_spoke_plainly(resumed)
    resent = {body["prompt"] for body in resumed.window.arrived} & in_flight
    assert resent == set(), resumed.stderr  # possibly billed: never sent again unasked
    assert "may have been billed" in resumed.stderr
    assert history.violations() == []


@pytest.mark.anyio
async def test_a_generate_many_cut_short_by_wait_for_reports_every_request_in_flight(
    fresh: ReferenceServer,
) -> None:
    fresh.faults.latency = 1.0
    seen: list[BatchResult] = []
    mark = Window.mark(fresh)
    raised: BaseException | None = None
    async with AsyncFluxSchnell(api_key=fresh.api_key, base_url=fresh.url) as flux:
        try:
            await asyncio.wait_for(
                flux.generate_many(REQUESTS, concurrency=4, on_result=seen.append), 1.5
            )
        except TimeoutError as error:
            raised = error
    await asyncio.sleep(0.2)
    window = Window.since(fresh, mark)
    assert raised is not None
    assert len(window.billed) == 8  # two waves of four: the second was in flight at the timeout
    assert {r.generation.task_id for r in seen if r.generation} == {t for t, _ in window.billed}
    run = Run((), window)
    assert violations([run], delivered=[Delivered(reported=tuple(seen), raised=raised)]) == []


def test_generate_interrupted_while_saving_says_what_it_paid_for_and_where_it_is(
    fresh: ReferenceServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    argv = ("generate", "eight", "--width", "64", "--height", "64", "--steps", "1", "-n", "8",
            "--out", str(out))  # fmt: skip
    fresh.faults.drip_images_next(8, interval=0.0002)  # saving takes a while
    mark = Window.mark(fresh)
    with environment(fresh) as env:
        command = [sys.executable, "-m", "novita_flux", *argv]
        process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while not list(out.glob("*_0.png")):  # the first image is saved: now saving the rest
            assert time.monotonic() < deadline, "nothing was saved"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGINT)
        time.sleep(0.1)
        os.kill(process.pid, signal.SIGINT)  # and again: stop at once
        _, err = process.communicate(timeout=30)
    run = Run(argv, Window.since(fresh, mark), process.returncode, "", err)
    assert_spoke_plainly(run)
    assert process.returncode == 130, err
    ((task_id, _),) = run.window.billed
    saved = len(list(out.glob("*.png")))
    assert saved < 8, "saving was not interrupted: the test tested nothing"
    assert f"task {task_id}" in err
    assert violations([run], out) == []  # every image not saved has its link on stderr
