"""The novita-flux command: exit codes, messages, files, and batches that resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from novita_flux import _faultpoints
from novita_flux._cli import main
from novita_flux.testing import ReferenceServer
from tests.support import Sleeps


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    if argv[0] == "batch" and "--images-per-minute" not in argv:
        argv = (*argv, "--images-per-minute", "0")  # the reference server sets no limit
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- price, dry run, bad input ------------------------------------------------------------------


def test_price_prints_the_exact_cost(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "price", "--width", "512", "--height", "512", "--steps", "4") == (
        0,
        "$0.00075\n",
        "",
    )


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["price", "--width", "4096", "--height", "512", "--steps", "4"], "width"),
        (["generate", "x", "--steps", "0", "--dry-run"], "steps"),
        (["generate", "", "--dry-run"], "prompt"),
        (["generate", "x", "-n", "9", "--mock"], "-n/--image-num"),
    ],
)
def test_invalid_input_exits_2_with_one_line_naming_the_field(
    capsys: pytest.CaptureFixture[str], argv: list[str], field: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    (line,) = [text for text in err.splitlines() if text.startswith("novita-flux")]
    assert field in line
    assert "Traceback" not in err


def test_dry_run_prints_the_request_and_cost_and_sends_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    code, out, _ = run(capsys, "generate", "a fox", "--seed", "5", "--dry-run", "--type", "webp")
    assert code == 0
    request = json.loads(out[: out.rindex("}") + 1])
    assert request == {
        "prompt": "a fox",
        "seed": 5,
        "steps": 4,
        "width": 1024,
        "height": 1024,
        "image_num": 1,
        "response_image_type": "webp",
    }
    assert out.rstrip().endswith("estimated cost: $0.003")


def test_a_dry_run_without_a_seed_says_its_seed_is_its_own_and_how_to_send_that_request(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    argv = ["generate", "a fox", "--width", "64", "--height", "64"]
    code, out, _ = run(capsys, *argv, "--dry-run")
    assert code == 0
    shown = json.loads(out[: out.rindex("}") + 1])
    assert out.rstrip().splitlines()[-1] == (
        f"seed {shown['seed']} was drawn for this dry run: a run without --seed draws its own; "
        f"add --seed {shown['seed']} to send exactly this request"
    )
    assert run(capsys, *argv, "--seed", str(shown["seed"]), "--out", str(tmp_path))[0] == 0
    ((_, sent),) = api.faults.billed
    assert sent == shown  # the request printed is the request sent
    for extra, drawn in (([], True), (["--seed", "7"], False)):
        code, out, _ = run(capsys, *argv, "--dry-run", "--json", *extra)
        assert json.loads(out)["seed_drawn"] is drawn


def test_a_missing_key_says_how_to_set_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    code, _, err = run(capsys, "generate", "x")
    assert code == 2
    assert "NOVITA_API_KEY" in err
    assert "--mock" in err


def test_an_over_budget_request_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "x", "--max-cost", "0.001", "--dry-run")
    assert code == 2
    assert "exceeds the budget $0.001" in err


# --- generate -----------------------------------------------------------------------------------


def test_generate_saves_real_images_with_metadata(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "generate", "a red fox", "--width", "320", "--height", "200", "--seed", "9",
        "-n", "2", "--type", "jpeg", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    paths = [Path(line.split()[0]) for line in out.splitlines() if line.startswith(str(tmp_path))]
    assert len(paths) == 2
    for path in paths:
        with Image.open(path) as image:
            assert (image.format, image.size) == ("JPEG", (320, 200))
        sidecar = json.loads(Path(f"{path}.json").read_text())
        assert sidecar["seed"] == 9
        assert sidecar["request"]["prompt"] == "a red fox"
    assert "cost $0.0003662109375" in err  # 2 * 0.003 * 320 * 200 * 4 / 4194304, on stderr
    assert out.count("$0.00018310546875") == 2  # each image's share, with its result
    assert api.faults.image_requests_with_authorization == 0


def test_mock_generates_offline_and_twice_gives_identical_bytes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    argv = ["generate", "a tiger eye", "--width", "256", "--height", "256", "--seed", "2024"]
    assert run(capsys, *argv, "--mock", "--out", str(tmp_path / "a"))[0] == 0
    assert run(capsys, *argv, "--mock", "--out", str(tmp_path / "b"))[0] == 0
    (first,) = (tmp_path / "a").glob("*.png")
    (second,) = (tmp_path / "b").glob("*.png")
    assert first.name == second.name
    assert first.read_bytes() == second.read_bytes()


def test_an_api_error_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", "wrong-key")
    code, out, err = run(capsys, "generate", "x", "--width", "64", "--height", "64")
    assert code == 1
    assert out == ""
    assert err.splitlines()[-1].startswith("novita-flux: AuthenticationError: 403 INVALID_API_KEY")
    assert "wrong-key" not in err
    assert "Traceback" not in err


# --- generate interrupted: what may have been billed, and how to find out ------------------------


@contextlib.contextmanager
def ctrl_c_at(point: str, times: int) -> Iterator[None]:
    """Press Ctrl-C `times` times (SIGINT to this process) when the run reaches `point`."""

    def hook(name: str) -> None:
        if name == point:
            _faultpoints.install(None)
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)

    _faultpoints.install(hook)
    try:
        yield
    finally:
        _faultpoints.install(None)


GENERATE = ["generate", "a fox", "--width", "64", "--height", "64", "--seed", "7"]


def test_ctrl_c_twice_as_the_request_leaves_says_it_may_be_billed_and_how_to_find_out(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    with ctrl_c_at("api.sending", 2):
        code, out, err = run(capsys, *GENERATE, "--out", str(tmp_path), "-q")
    (record,) = tmp_path.glob(".novita-flux-call-*.json")
    assert (code, out) == (130, "")
    (line,) = err.splitlines()  # --quiet: this line is all, and it is enough
    assert "may have been billed" in line
    assert "seed 7, 64x64, 4 steps, 1 image(s)" in line  # which request
    assert "your Novita account's billing shows whether its task ran" in line  # how to find out
    assert f"its record {record}" in line  # what is kept, and what the next run does with it
    assert "--resend-unknown" in line
    code, _, err = run(capsys, *GENERATE, "--out", str(tmp_path))
    assert code == 2  # the next run reports it, and does not send it again unasked
    assert str(record) in err


def test_ctrl_c_twice_as_the_answer_arrives_keeps_the_answer_and_the_next_run_saves_it(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    with ctrl_c_at("api.answered", 2):
        code, _, err = run(capsys, *GENERATE, "--out", str(tmp_path), "-q")
    ((task_id, _),) = api.faults.billed
    assert code == 130
    (line,) = err.splitlines()
    assert "interrupted after the call was paid for" in line
    assert f"task {task_id}; image 0 at {api.image_base_url}/images/{task_id}/0.png?" in line
    assert "the same command again saves them" in line
    code, out, _ = run(capsys, *GENERATE, "--out", str(tmp_path))
    assert code == 0
    assert f"task {task_id}" in out  # the images of the call paid for, not of a new one
    assert len(api.faults.billed) == 1
    assert not list(tmp_path.glob(".novita-flux-call-*.json"))


def test_ctrl_c_once_lets_the_call_finish_and_says_so_even_when_quiet(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    with ctrl_c_at("api.sending", 1):
        code, out, err = run(capsys, *GENERATE, "--out", str(tmp_path), "-q")
    ((task_id, _),) = api.faults.billed
    assert code == 130
    assert out.startswith(str(tmp_path))
    assert err.splitlines() == [
        f"novita-flux: interrupted after the call finished: task {task_id} was paid for and "
        f"its 1 image(s) are saved in {tmp_path}"
    ]


# --- batch --------------------------------------------------------------------------------------


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_batch_reports_bad_lines_by_number_and_runs_the_rest(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            '{"prompt": "one", "width": 64, "height": 64}',
            "{not json",
            '{"prompt": "two", "width": 64, "height": 64, "steps": 500}',
            "",
            '{"prompt": "three", "width": 64, "height": 64, "image_num": 2}',
        ],
    )
    code, _, err = run(capsys, "batch", str(source), "--out", str(tmp_path / "out"))
    assert code == 1  # something failed; 2 would say nothing was sent
    assert "line 2: not valid JSON" in err
    assert "line 3: steps: 500 is not an integer in [1, 100]" in err
    assert err.splitlines()[-1] == (
        f"novita-flux: batch: 2 line(s) of {source} are not valid requests and were not sent: "
        "lines 2-3"
    )
    entries = {entry["line"]: entry for entry in manifest(tmp_path / "out")}
    assert {n: e["status"] for n, e in entries.items()} == {
        1: "saved",
        2: "invalid",
        3: "invalid",
        5: "saved",
    }
    assert len(entries[5]["files"]) == 2
    assert all((tmp_path / "out" / name).is_file() for name in entries[5]["files"])
    assert api.faults.api_requests == 2


def mixed_batch(path: Path) -> Path:
    """The issue's batch: 48 lines, 15 of them invalid, the others to send."""
    lines = []
    for number in range(1, 49):
        invalid = (number in range(3, 18) and number != 10) or number == 20
        width = 63 if invalid else 64
        lines.append(f'{{"prompt": "p{number}", "width": {width}, "height": 64}}')
    return write_jsonl(path, lines)


def test_a_batch_that_sent_its_valid_lines_exits_1_naming_the_invalid_ones_by_number(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = mixed_batch(tmp_path / "in.jsonl")
    code, _, err = run(capsys, "batch", str(source), "--out", str(tmp_path / "out"))
    assert api.faults.api_requests == 33
    assert code == 1  # not 2: requests were sent
    assert err.splitlines()[-1] == (
        f"novita-flux: batch: 15 line(s) of {source} are not valid requests and were not sent: "
        "lines 3-9, 11-17, 20"
    )
    assert err.count("width: 63 is not an integer in [64, 2048]") == 15  # each by its number
    code, _, err = run(capsys, "batch", str(source), "--out", str(tmp_path / "out"))
    assert (code, api.faults.api_requests) == (2, 33)  # the rerun: all saved, nothing sent
    assert err.splitlines()[-1].endswith("lines 3-9, 11-17, 20; nothing was sent")


def test_a_batch_that_sent_nothing_because_its_lines_are_invalid_exits_2(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ['{"prompt": ""}', "[1]"])
    code, _, err = run(capsys, "batch", str(source), "--out", str(tmp_path / "out"))
    assert (code, api.faults.api_requests) == (2, 0)
    assert err.splitlines()[-1].endswith("were not sent: lines 1-2; nothing was sent")


def test_quiet_hides_progress_and_notes_never_the_lines_refused_or_failed(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl",
        [
            '{"prompt": "ok", "width": 64, "height": 64}',
            '{"prompt": "too wide", "width": 4096, "height": 64}',
            '{"prompt": "refused by the API", "width": 64, "height": 64}',
        ],
    )
    api.faults.fail_next(1, reason="ILLEGAL_PROMPT")  # the first request sent is refused
    code, out, err = run(
        capsys, "batch", str(source), "--out", str(tmp_path / "out"), "-q", "--concurrency", "1"
    )
    assert code == 1
    lines = err.splitlines()
    assert "line 2: width: 4096 is not an integer in [64, 2048]" in lines
    assert any(line.startswith("line 1: BadRequestError: 400 ILLEGAL_PROMPT") for line in lines)
    assert lines[-1].startswith("novita-flux: batch: 1 failed")
    assert "request(s) to send" not in err  # no notes
    assert len(lines) == 3
    assert "line 3: saved" in out


def test_batch_refuses_a_total_over_budget_before_sending(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", ['{"prompt": "a"}', '{"prompt": "b"}'])
    code, _, err = run(
        capsys, "batch", str(source), "--out", str(tmp_path), "--max-total-cost", "0.005"
    )
    assert code == 2
    assert "estimated cost $0.006 of this batch exceeds the budget $0.005" in err
    assert api.faults.api_requests == 0


def test_a_generation_none_of_whose_images_could_be_saved_stays_paid_and_is_saved_on_rerun(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    # Every try of the only image ends early: nothing of the generation lands on disk, and the
    # ledger must still record it as paid (it once crashed writing an empty list of files).
    source = write_jsonl(tmp_path / "in.jsonl", ['{"prompt": "cut", "width": 64, "height": 64}'])
    out = tmp_path / "out"
    api.faults.cut_images_next(10)
    code, _, err = run(capsys, "batch", str(source), "--out", str(out))
    assert code == 1, err
    assert "line 1: saving failed" in err
    assert "Traceback" not in err
    (entry,) = manifest(out)
    assert (entry["status"], entry["files"]) == ("paid", [])
    api.faults.reset()
    code, _, err = run(capsys, "batch", str(source), "--out", str(out))
    assert code == 0, err
    (entry,) = manifest(out)
    assert entry["status"] == "saved"
    assert len(entry["files"]) == 1
    assert len(api.faults.billed) == 0  # the rerun only downloaded


def test_a_rerun_resumes_retrying_failures_and_never_pays_twice(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path, sleeps: Sleeps
) -> None:
    lines = [f'{{"prompt": "p{i}", "width": 64, "height": 64}}' for i in range(4)]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out"
    api.faults.fail_next(3, reason="SERVICE_NOT_AVAILABLE")  # one request: 3 attempts, all 503
    code, _, err = run(capsys, "batch", str(source), "--out", str(out), "--concurrency", "1")
    assert code == 1
    assert "SERVICE_NOT_AVAILABLE" in err
    first = {entry["line"]: entry for entry in manifest(out)}
    assert sorted(entry["status"] for entry in first.values()) == [
        "failed",
        "saved",
        "saved",
        "saved",
    ]
    (failed,) = [entry for entry in first.values() if entry["status"] == "failed"]
    calls_before = api.faults.api_requests

    code, _, _ = run(capsys, "batch", str(source), "--out", str(out))
    assert code == 0
    assert api.faults.api_requests == calls_before + 1  # only the failed line is sent again
    second = {entry["line"]: entry for entry in manifest(out)}
    assert all(entry["status"] == "saved" for entry in second.values())
    assert second[failed["line"]]["seed"] == failed["seed"]  # retried with the same seed
    assert all(second[n]["task_id"] == first[n]["task_id"] for n in first if n != failed["line"])

    code, _, _ = run(capsys, "batch", str(source), "--out", str(out))
    assert (code, api.faults.api_requests) == (0, calls_before + 1)


def saved_in_ledger(out: Path) -> int:
    path = out / "ledger.sqlite3"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as ledger:
        try:
            (count,) = ledger.execute(
                "SELECT COUNT(*) FROM requests WHERE state = 'saved'"
            ).fetchone()
        except sqlite3.OperationalError:  # not created yet
            return 0
    return int(count)


def interrupt_after_first_result(out: Path) -> threading.Thread:
    """Send Ctrl-C (SIGINT) as soon as the ledger records a first saved line."""

    def watch() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if saved_in_ledger(out):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    return watcher


def test_ctrl_c_leaves_a_consistent_manifest_and_the_rerun_finishes(
    capsys: pytest.CaptureFixture[str], api: ReferenceServer, tmp_path: Path
) -> None:
    lines = [f'{{"prompt": "p{i}", "width": 64, "height": 64}}' for i in range(10)]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out"
    api.faults.latency = 0.2
    watcher = interrupt_after_first_result(out)
    code, _, err = run(capsys, "batch", str(source), "--out", str(out), "--concurrency", "2")
    watcher.join()
    assert code == 130
    assert "run the same command again" in err
    interrupted = manifest(out)
    assert len(interrupted) == 10  # one line per input line, whatever happened to it
    saved = [entry for entry in interrupted if entry["status"] == "saved"]
    # The first wave (2 requests) finished, and each worker may already have sent its next.
    assert 0 < len(saved) <= 4
    assert {entry["status"] for entry in interrupted} <= {"saved", "planned"}
    for entry in saved:  # every recorded line is complete: status, files on disk
        assert all((out / name).is_file() for name in entry["files"])
    assert not list(out.glob(".novita-*.part"))  # no half-written files
    assert api.faults.api_requests == len(saved)  # everything sent was recorded

    api.faults.latency = 0.0
    code, _, _ = run(capsys, "batch", str(source), "--out", str(out))
    assert code == 0
    assert api.faults.api_requests == 10  # the rerun sent only what was missing
    assert [entry["status"] for entry in manifest(out)] == ["saved"] * 10


def test_a_paid_answer_the_ledger_refuses_to_take_is_said_with_its_links_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
    api: ReferenceServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ledger refuses a step its table does not allow (IllegalStep): only a bug in the
    runner can ask for one. Should it ever refuse a 200's links, the answer was paid for and is
    recorded nowhere: the batch stops, and says the task and its links, as it does when the disk
    refuses the write."""
    from novita_flux._ledger import Ledger

    # The bug: the intent to send is not recorded, so the row is still `planned` when the
    # answer comes, and `answered` does not leave from there.
    monkeypatch.setattr(Ledger, "sending", lambda self, key, *, again=False: True)
    source = write_jsonl(tmp_path / "in.jsonl", ['{"prompt": "one", "width": 64, "height": 64}'])
    code, _, err = run(capsys, "batch", str(source), "--out", str(tmp_path / "out"))
    assert api.faults.api_requests == 1  # paid for once, and never again
    assert code == 1
    assert "Traceback" not in err
    (said,) = [line for line in err.splitlines() if line.startswith("line 1:")]
    assert "task " in said, said
    assert "image 0 at http" in said, said
    assert "is planned" in said  # why it is not recorded
    assert "spent $0.00001171875;" in err  # counted as spent: it was
    assert "this is a bug in novita-flux" in err.splitlines()[-1]
