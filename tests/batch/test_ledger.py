"""`novita-flux batch` under faults, over real HTTP: the process killed, terminated or interrupted
twice, run twice at once, its input edited, its ledger damaged, its key wrong. The reference
server records every call it would have billed, so "never pays twice" is counted, not assumed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from novita_flux._cli import main
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, incomplete, sniff
from novita_flux.testing import ReferenceServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def running() -> Iterator[ReferenceServer]:
    with ReferenceServer() as server:
        yield server


@pytest.fixture
def server(running: ReferenceServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReferenceServer]:
    running.faults.reset()
    monkeypatch.setenv("NOVITA_API_KEY", running.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", running.url)
    yield running
    running.faults.reset()


def lines_of(count: int, tag: str = "p") -> list[str]:
    return [f'{{"prompt": "{tag}{i}", "width": 64, "height": 64}}' for i in range(count)]


def write(path: Path, lines: list[str], *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + ("\n".join(lines) + "\n").encode())
    return path


def batch_argv(source: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(source), "--out", str(out), "--images-per-minute", "0", *extra]


def start(server: ReferenceServer, source: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """The command in a process of its own, as a user runs it."""
    env = {**os.environ, "NOVITA_API_KEY": server.api_key, "NOVITA_BASE_URL": server.url}
    command = [sys.executable, "-m", "novita_flux", *batch_argv(source, out, *extra)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def ledger(out: Path) -> dict[str, dict[str, Any]]:
    """The ledger's rows by prompt, read as any sqlite3 tool would."""
    uri = f"file:{out / 'ledger.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(row) for row in db.execute("SELECT * FROM requests")]
    return {json.loads(row["body"])["prompt"]: row for row in rows}


def states(out: Path) -> Counter[str]:
    try:
        return Counter(row["state"] for row in ledger(out).values())
    except sqlite3.Error:  # not created yet
        return Counter()


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def billed_per_prompt(server: ReferenceServer) -> Counter[str]:
    return Counter(body["prompt"] for _, body in server.faults.billed)


def assert_whole_image(path: Path) -> None:
    data = path.read_bytes()
    kind = sniff(data[:HEAD_BYTES])
    assert kind is not None, path
    assert incomplete(kind, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)) is None, path


def assert_saved_rows_are_whole(out: Path, rows: dict[str, dict[str, Any]]) -> None:
    for row in rows.values():
        if row["state"] == "saved":
            files = json.loads(row["files"])
            assert len(files) == json.loads(row["body"])["image_num"]
            for name in files:
                assert_whole_image(out / name)


# --- killed, terminated, interrupted twice ------------------------------------------------------


def test_sigkill_at_random_moments_never_bills_twice_and_saves_every_paid_image(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(50))
    out = tmp_path / "out"
    server.faults.latency = 0.1
    moments = random.Random(20261130)
    for _ in range(3):
        process = start(server, source, out, "--concurrency", "4")
        time.sleep(0.6 + moments.uniform(0.0, 0.8))  # start-up, then part of the way through
        process.kill()
        process.wait()
    assert not list(out.glob(".novita-*.part")) or True  # a kill may leave some: cleaned below
    finished = start(server, source, out, "--concurrency", "4")
    _, err = finished.communicate(timeout=60)
    assert finished.returncode in (0, 1), err
    assert not list(out.glob(".novita-*.part"))  # the stray halves of the killed runs are gone

    rows = ledger(out)
    billed = billed_per_prompt(server)
    assert len(rows) == 50
    assert max(billed.values()) == 1  # no request billed twice
    assert set(Counter(row["state"] for row in rows.values())) <= {"saved", "unknown"}
    for prompt, row in rows.items():
        assert row["sends"] <= 1, prompt
        if row["state"] == "saved":
            assert billed[prompt] == 1, prompt
        else:  # in flight when a process was killed: maybe billed, never sent again
            assert row["sends"] == 1
            assert billed[prompt] <= 1
            assert "may have been billed" in err or "possibly billed" in err
    assert_saved_rows_are_whole(out, rows)
    saved_tasks = {row["task_id"] for row in rows.values() if row["state"] == "saved"}
    assert saved_tasks <= {task for task, _ in server.faults.billed}  # the ledger agrees

    unknown = [prompt for prompt, row in rows.items() if row["state"] == "unknown"]
    again = start(server, source, out, "--resend-unknown")
    again.communicate(timeout=60)
    assert again.returncode == 0
    rows = ledger(out)
    assert all(row["state"] == "saved" for row in rows.values())
    billed = billed_per_prompt(server)
    assert all(billed[prompt] == 1 for prompt in rows if prompt not in unknown)


def test_sigterm_stops_new_sends_lets_the_wire_finish_and_leaves_nothing_in_flight(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(40))
    out = tmp_path / "out"
    server.faults.latency = 0.3
    process = start(server, source, out, "--concurrency", "4")
    wait_for(lambda: states(out)["saved"] >= 4)
    process.send_signal(signal.SIGTERM)
    sent_at_signal = server.faults.api_requests
    _, err = process.communicate(timeout=10)
    assert process.returncode == 130
    assert "SIGTERM" in err
    assert "run the same command again" in err
    assert server.faults.api_requests <= sent_at_signal + 4  # only what was already sending
    counts = states(out)
    assert counts["sending"] == 0  # every request on the wire finished and was recorded
    assert counts["unknown"] == 0
    assert counts["saved"] == len(server.faults.billed)
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 40  # exported on the way out
    assert not list(out.glob(".novita-*.part"))

    resumed = start(server, source, out)
    resumed.communicate(timeout=60)
    assert resumed.returncode == 0
    assert max(billed_per_prompt(server).values()) == 1
    assert len(server.faults.billed) == 40


def test_a_request_waiting_for_its_pacing_slot_is_never_sent_after_a_signal(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(10))
    out = tmp_path / "out"
    # One image every 30 s: every request but the first waits for its slot.
    env = {**os.environ, "NOVITA_API_KEY": server.api_key, "NOVITA_BASE_URL": server.url}
    command = [sys.executable, "-m", "novita_flux", "batch", str(source), "--out", str(out)]
    command += ["--images-per-minute", "2", "--concurrency", "4"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: states(out)["saved"] >= 1)
    time.sleep(0.2)  # between two slots: nothing on the wire
    sent = server.faults.api_requests
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=25)
    # Well before the next slot (~30 s away), however loaded the machine: the waits were
    # interrupted, not served.
    assert time.monotonic() - signalled < 15.0
    assert process.returncode == 130
    time.sleep(0.2)  # anything still on its way to the server has arrived
    assert server.faults.api_requests == sent == 1


def test_a_second_ctrl_c_exits_at_once_and_the_ledger_stays_consistent(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(12))
    out = tmp_path / "out"
    server.faults.latency = 2.0  # requests stay on the wire
    process = start(server, source, out, "--concurrency", "3")
    wait_for(lambda: server.faults.api_requests >= 3)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    signalled = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=10)
    assert time.monotonic() - signalled < 1.0  # did not wait out the 2 s on the wire
    assert process.returncode == 130
    assert "stopped at once" in err
    assert states(out)["sending"] == 3  # in flight when it left, and the ledger says so
    time.sleep(2.2)  # the server finishes (and bills) what it had started

    server.faults.latency = 0.0
    resumed = start(server, source, out)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 1  # three possibly billed, reported, not sent again
    assert "3 request(s) were in flight when the last run stopped" in err
    counts = states(out)
    assert (counts["saved"], counts["unknown"]) == (9, 3)
    assert max(billed_per_prompt(server).values()) == 1


# --- one writer ---------------------------------------------------------------------------------


def test_a_second_batch_on_the_same_directory_refuses_and_the_first_finishes(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(100))
    out = tmp_path / "out"
    # Slow answers keep the first run going (~20 s of work) however long the second process
    # takes to start (seconds on a loaded machine, or under mutmut's trampolines); once it has
    # been turned away, the first is let through at full speed.
    server.faults.latency = 0.4
    first = start(server, source, out, "--concurrency", "2")
    wait_for(lambda: server.faults.api_requests >= 1)
    second = start(server, source, out)
    _, err = second.communicate(timeout=60)
    server.faults.latency = 0.0
    assert second.returncode == 2, err
    (line,) = err.strip().splitlines()
    assert str(out) in line
    assert str(first.pid) in line
    first.communicate(timeout=60)
    assert first.returncode == 0
    assert len(server.faults.billed) == 100  # billed calls equal lines


def test_a_lock_left_by_a_killed_run_is_taken_over(server: ReferenceServer, tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(20))
    out = tmp_path / "out"
    server.faults.latency = 0.2
    killed = start(server, source, out)
    wait_for(lambda: server.faults.api_requests >= 1)
    killed.kill()
    killed.wait()
    assert (out / ".novita-flux.lock").read_text().strip() == str(killed.pid)
    server.faults.latency = 0.0
    again = start(server, source, out)
    _, err = again.communicate(timeout=60)
    assert f"the process that held it ({killed.pid}) is gone" in err
    assert again.returncode in (0, 1)


# --- identity by content ------------------------------------------------------------------------


def test_moving_lines_comments_blank_lines_and_a_bom_never_rebill_and_an_edit_bills_once(
    server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = lines_of(8)
    source = write(tmp_path / "in.jsonl", original)
    out = tmp_path / "out"
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 8

    edited = [
        "# my prompts",
        "",
        *reversed(original[2:]),
        "   ",
        "# the first two, last",
        original[1],
    ]
    write(source, edited, bom=True)  # original[0] deleted, the rest moved
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 8

    write(source, [original[0].replace("p0", "p0, sharper"), *original[1:]])
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 9  # the edited line is a new request; nothing else

    write(source, [*original, original[3]])  # the same request twice: two images
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 10
    capsys.readouterr()


def test_a_line_without_a_seed_is_sent_with_the_seed_first_written_for_it(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(4))
    out = tmp_path / "out"
    server.faults.fail_next(1, reason="INVALID_IMAGE_SIZE")  # refused: sent again next run
    assert main(batch_argv(source, out)) == 1
    seeds = {prompt: row["seed"] for prompt, row in ledger(out).items()}
    (refused,) = [p for p, row in ledger(out).items() if row["state"] == "failed"]
    assert main(batch_argv(source, out)) == 0
    sent = {body["prompt"]: body["seed"] for _, body in server.faults.billed}
    assert sent == seeds  # each the seed drawn and recorded before its first send
    assert sent[refused] == seeds[refused]


# --- damaged records ----------------------------------------------------------------------------


def finished_batch(server: ReferenceServer, tmp_path: Path, count: int = 10) -> tuple[Path, Path]:
    source = write(tmp_path / "in.jsonl", lines_of(count))
    out = tmp_path / "out"
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == count
    return source, out


def garble(path: Path, start_at: int, length: int) -> None:
    data = bytearray(path.read_bytes())
    data[start_at : start_at + length] = random.Random(7).randbytes(length)
    path.write_bytes(bytes(data))


def garble_a_row(path: Path) -> None:
    """Overwrite the stored bytes of one request: a damaged sector the b-tree check misses."""
    garble(path, path.read_bytes().index(b'"prompt":"p5","seed"'), 24)  # the body sent


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "is damaged"),
        (lambda p: garble(p, 0, 4096), "is damaged"),  # the header page itself
        (lambda p: garble(p, 4096, 8192), "is damaged"),  # the first table pages
        (lambda p: p.write_bytes(b"\x00" * 100), "is damaged"),
        (garble_a_row, "1 request(s) could not be read"),
    ],
    ids=["truncated", "garbled-header", "garbled-pages", "zeroed", "garbled-row"],
)
def test_a_damaged_ledger_is_reported_and_rebuilt_and_nothing_paid_is_sent_again(
    server: ReferenceServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: Any,
    said: str,
) -> None:
    source, out = finished_batch(server, tmp_path)
    capsys.readouterr()
    damage(out / "ledger.sqlite3")
    code = main(batch_argv(source, out))
    err = capsys.readouterr().err
    assert f"ledger.sqlite3{'' if 'damaged' in said else ':'} {said}" in err
    assert list(out.glob("ledger.sqlite3.*-*"))  # the damaged part is kept, to look at
    assert code == 0
    assert len(server.faults.billed) == 10  # nothing paid was forgotten
    assert states(out)["saved"] == 10


def test_damaged_manifest_lines_are_reported_by_position_and_the_resume_goes_on(
    server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, out = finished_batch(server, tmp_path)
    (out / "ledger.sqlite3").unlink()  # only the manifest and the sidecars are left
    manifest = (out / "manifest.jsonl").read_text().splitlines()
    manifest[2] = manifest[2][: len(manifest[2]) // 2]  # truncated
    manifest[4] = "\x07" + manifest[4]  # a stray byte
    entry = json.loads(manifest[6])
    manifest[6] = json.dumps(entry | {"from_the_future": True})  # an unknown field
    (out / "manifest.jsonl").write_text("\n".join(manifest)[:-20])  # and a cut-off last line
    capsys.readouterr()
    code = main(batch_argv(source, out))
    err = capsys.readouterr().err
    assert "manifest.jsonl line 3: cannot be read" in err
    assert "manifest.jsonl line 5: cannot be read" in err
    assert "manifest.jsonl line 10: cannot be read" in err
    assert code == 0
    assert len(server.faults.billed) == 10  # the sidecars said what the manifest lost
    assert states(out)["saved"] == 10


def test_a_manifest_from_before_the_ledger_is_taken_over_without_paying_again(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source, out = finished_batch(server, tmp_path, count=3)
    old = []
    for number, line in enumerate((out / "manifest.jsonl").read_text().splitlines(), start=1):
        entry = json.loads(line)  # the manifest-only format: keyed by position, status done
        old.append(
            json.dumps(entry | {"line": number, "key": "0123abcd0123abcd", "status": "done"})
        )
    (out / "manifest.jsonl").write_text("\n".join(old) + "\n")
    (out / "ledger.sqlite3").unlink()
    for sidecar in out.glob("*.json"):
        sidecar.unlink()  # that format's sidecars carried no batch key
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 3


# --- failing fast -------------------------------------------------------------------------------


def test_a_wrong_key_stops_the_batch_after_at_most_concurrency_refusals(
    server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(30))
    out = tmp_path / "out"
    monkeypatch.setenv("NOVITA_API_KEY", "not-the-key")
    code = main(batch_argv(source, out, "--concurrency", "4"))
    err = capsys.readouterr().err
    assert code == 1
    assert server.faults.api_requests <= 4
    errors = [line for line in err.splitlines() if line.startswith("novita-flux:")]
    assert len(errors) == 1
    assert "INVALID_API_KEY" in errors[0]
    assert "not-the-key" not in err
    counts = states(out)
    assert counts["planned"] >= 26  # the rest stay planned, ready for the right key
    monkeypatch.setenv("NOVITA_API_KEY", server.api_key)
    assert main(batch_argv(source, out)) == 0
    assert len(server.faults.billed) == 30


def test_an_exhausted_balance_stops_the_batch(
    server: ReferenceServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(10))
    server.faults.fail_next(10, reason="BILLING_BALANCE_NOT_ENOUGH")
    assert main(batch_argv(source, tmp_path / "out", "--concurrency", "1")) == 1
    assert server.faults.api_requests == 1
    assert "BILLING_BALANCE_NOT_ENOUGH" in capsys.readouterr().err


# --- answers that may have been billed ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["wrong_type", "unknown_image_type"])
def test_a_200_that_breaks_the_contract_is_recorded_as_paid_and_its_images_saved(
    server: ReferenceServer, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(3))
    out = tmp_path / "out"
    server.faults.malform_next(1, kind=kind)  # type: ignore[arg-type]
    assert main(batch_argv(source, out, "--concurrency", "1")) == 0
    assert "likely billed" in capsys.readouterr().err
    rows = ledger(out)
    assert all(row["state"] == "saved" for row in rows.values())
    billed_tasks = [task for task, _ in server.faults.billed]
    assert sorted(row["task_id"] for row in rows.values()) == sorted(billed_tasks)
    assert main(batch_argv(source, out)) == 0
    assert server.faults.api_requests == 3  # never generated again


def test_a_200_with_nothing_readable_is_possibly_billed_and_not_sent_again_unasked(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(2))
    out = tmp_path / "out"
    server.faults.malform_next(1, kind="not_json")
    assert main(batch_argv(source, out, "--concurrency", "1")) == 1
    assert states(out) == Counter({"saved": 1, "unknown": 1})
    assert main(batch_argv(source, out)) == 1
    assert server.faults.api_requests == 2
    assert main(batch_argv(source, out, "--resend-unknown")) == 0
    assert server.faults.api_requests == 3


def test_a_server_error_after_the_task_may_have_run_is_not_sent_again_unasked(
    server: ReferenceServer, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.jsonl", lines_of(2))
    out = tmp_path / "out"
    server.faults.fail_next(1, reason="TASK_FAILED")
    assert main(batch_argv(source, out, "--concurrency", "1")) == 1
    assert states(out) == Counter({"saved": 1, "unknown": 1})
    assert main(batch_argv(source, out)) == 1
    assert server.faults.api_requests == 2


def test_a_batch_runs_end_to_end_against_what_the_real_api_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write(tmp_path / "in.jsonl", [*lines_of(4), '{"prompt": "two", "image_num": 2, '
                                           '"width": 64, "height": 64}'])  # fmt: skip
    out = tmp_path / "out"
    with ReferenceServer(profile="observed", image_url_ttl=0) as observed:
        monkeypatch.setenv("NOVITA_API_KEY", observed.api_key)
        monkeypatch.setenv("NOVITA_BASE_URL", observed.url)
        observed.faults.cut_images_next(1)  # one image ends early: fetched again, never kept cut
        assert main(batch_argv(source, out)) == 0
        assert main(batch_argv(source, out)) == 0
        assert len(observed.faults.billed) == 5
    rows = ledger(out)
    assert all(row["state"] == "saved" for row in rows.values())
    assert_saved_rows_are_whole(out, rows)
    entries = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert all(image["expires_at"] is None for e in entries for image in e["images"])  # TTL "0"
    assert all(image["ttl"] == 0 for e in entries for image in e["images"])
