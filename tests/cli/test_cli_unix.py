"""The command line as a good Unix tool: one line and status 2 for every bad option of every
command, help that states ranges and defaults from the spec, JSON on stdout and nothing else,
--quiet, text from servers made safe for a terminal, and names people can read."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from novita_flux import FluxSchnell, ValidationError
from novita_flux._cli import main
from novita_flux._cli._main import build_parser
from novita_flux._request import field_schema
from novita_flux._schema import describe
from novita_flux.testing import ReferenceServer

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- every bad option of every command: one line, status 2 --------------------------------------

JSONL = "in.jsonl"  # written by the test: a valid input, so only the option is wrong
BAD_OPTIONS: dict[str, list[tuple[list[str], str]]] = {
    "generate": [
        (["generate"], "the following arguments are required: prompt"),
        (["generate", ""], "prompt: '' is not a string of 1 to 1024 characters"),
        (["generate", "x", "--width", "63"], "width: 63 is not an integer in [64, 2048]"),
        (["generate", "x", "--width", "wide"], "--width: 'wide' is not an integer in [64, 2048]"),
        (["generate", "x", "--width", " 512"], "--width: ' 512' is not an integer in [64, 2048]"),
        (["generate", "x", "--height", "2049"], "height: 2049 is not an integer in [64, 2048]"),
        (["generate", "x", "--steps", "0"], "--steps: 0 is not an integer in [1, 100]"),
        (["generate", "x", "--steps", "nan"], "--steps: 'nan' is not an integer in [1, 100]"),
        (
            ["generate", "x", "--steps", "\uff14"],
            "--steps: '\uff14' is not an integer in [1, 100] (ASCII",
        ),
        (["generate", "x", "-n", "9"], "-n/--image-num: 9 is not an integer in [1, 8]"),
        (["generate", "x", "--image-num", "1.5"], "--image-num: '1.5' is not an integer in [1, 8]"),
        (["generate", "x", "--seed", "-1"], "--seed: -1 is not an integer in [0, 4294967295]"),
        (["generate", "x", "--seed", "1_000"], "--seed: '1_000' is not an integer in [0, "),
        (["generate", "x", "--type", "gif"], "invalid choice: 'gif'"),
        (["generate", "x", "--out", "OUT_IS_A_FILE"], "exists and is not a directory"),
        (["generate", "x", "--out", ""], "--out: '' is not a directory ('.' is this one)"),
        (["generate", "x", "--max-cost", "-1"], "--max-cost: '-1' is not a non-negative amount"),
        (["generate", "x", "--max-cost", "\uff11"], "--max-cost: '\uff11' is not a non-negative"),
        (["generate", "x", "--max-cost", "0.001", "--dry-run"], "exceeds the budget $0.001"),
        (["generate", "x", "--base-url", "api.novita.ai"], "is not an http(s) URL"),
        (["generate", "x", "--base-url", "https://api.novita.ai/v3beta"], "has a path"),
        (["generate", "x", "--base-url", "http://example.com"], "unencrypted"),
        (["generate", "x", "--timeout", "0"], "--timeout: 0.0 is not a positive number"),
        (["generate", "x", "--timeout", "soon"], "--timeout: 'soon' is not a positive number of"),
        (["generate", "x", "--timeout", "\u0663"], "--timeout: '\u0663' is not a positive number"),
        (["generate", "x", "--max-retries", "-1"], "--max-retries: -1 is not an integer >= 0"),
        (["generate", "x", "--dry-run", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    ],
    "price": [
        (["price", "--width", "4096"], "width: 4096 is not an integer in [64, 2048]"),
        (["price", "--height", "1"], "height: 1 is not an integer in [64, 2048]"),
        (["price", "--steps", "101"], "steps: 101 is not an integer in [1, 100]"),
        (["price", "-n", "0"], "-n/--image-num: 0 is not an integer in [1, 8]"),
        (["price", "--json", "extra"], "unrecognized arguments: extra"),
    ],
    "batch": [
        (["batch", JSONL], "the following arguments are required: --out"),
        (["batch", "missing.jsonl", "--out", "o"], "cannot read missing.jsonl"),
        (["batch", JSONL, "--out", "OUT_IS_A_FILE"], "--out OUT_IS_A_FILE"),
        (["batch", JSONL, "--out", ""], "--out: '' is not a directory ('.' is this one)"),
        (["batch", JSONL, "--out", "o", "--concurrency", "0"], "--concurrency: 0 is not an"),
        (["batch", JSONL, "--out", "o", "--concurrency", "\uff12"], "(ASCII digits only)"),
        (["batch", JSONL, "--out", "o", "--images-per-minute", "-1"], "--images-per-minute: -1"),
        (
            ["batch", JSONL, "--out", "o", "--max-total-cost", "free"],
            "--max-total-cost: 'free' is not a non-negative amount in USD",
        ),
        (["batch", JSONL, "--out", "o", "--max-total-cost", "0"], "exceeds the budget $0.00"),
        (["batch", JSONL, "--out", "o", "--base-url", "ftp://x"], "is not an http(s) URL"),
        (["batch", JSONL, "--out", "o", "--timeout", "-5"], "--timeout: -5.0 is not a positive"),
        (["batch", JSONL, "--out", "o", "--max-retries", "x"], "--max-retries: 'x' is not an int"),
    ],
    "gallery": [
        (["gallery"], "the following arguments are required: DIR"),
        (["gallery", "no-such-dir"], "no-such-dir is not a directory"),
        (["gallery", ""], "DIR: '' is not a directory ('.' is this one)"),
        (["gallery", "d" * 300], "File name too long"),  # longer than a file name may be
    ],
    "verify": [
        (["verify", "--max-cost", "-0.5"], "--max-cost: '-0.5' is not a non-negative amount"),
        (["verify", "--max-cost", "0.00001"], "exceeds the budget $0.00001"),
        (["verify", "--record", "OUT_IS_A_FILE"], "--record OUT_IS_A_FILE"),
        (["verify", "--record", ""], "--record: '' is not a directory ('.' is this one)"),
        (["verify", "--base-url", "https://api.novita.ai/v3beta"], "has a path"),
        (["verify", "--images-per-minute", "-3"], "--images-per-minute: -3 is not an integer"),
        (["verify", "--timeout", "-1"], "--timeout: -1.0 is not a positive number"),
        (["verify", "--max-retries", "two"], "--max-retries: 'two' is not an integer >= 0"),
        (["verify", "--base-url", "http://example.com"], "(--allow-insecure) if that is what"),
        (["verify", "--only", "everything"], "the groups are"),
    ],
    "serve-mock": [
        (["serve-mock", "--port", "99999"], "--port: 99999 is not an integer in [0, 65535]"),
        (["serve-mock", "--port", "\uff18\uff10"], "--port: '\uff18\uff10' is not an integer in"),
        (["serve-mock", "--port", "PORT_IN_USE"], "cannot listen on 127.0.0.1:"),
        (["serve-mock", "--latency", "-1"], "--latency: -1.0 is not a number >= 0"),
        (["serve-mock", "--latency", "nan"], "--latency: 'nan' is not a number >= 0"),
        (["serve-mock", "--image-url-ttl", "-1"], "--image-url-ttl: -1 is not an integer >= 0"),
        (["serve-mock", "--images-per-minute", "0"], "--images-per-minute: 0 is not an integer"),
        (["serve-mock", "--log-level", "loud"], "invalid choice: 'loud'"),
        (["serve-mock", "--profile", "imagined"], "invalid choice: 'imagined'"),
        (["serve-mock", "--api-key", ""], "--api-key: '' is not a key a client can send"),
        (["serve-mock", "--host", "256.1.1.1"], "cannot listen on 256.1.1.1"),
        (["serve-mock", "--balance", "-2"], "balance: '-2' is not a non-negative amount"),
    ],
    "balance": [
        (["balance", "--base-url", "https://api.novita.ai/v3beta"], "has a path"),
        (["balance", "--timeout", "0"], "timeout: 0.0 is not a positive number"),
        (["balance", "--max-retries", "-1"], "--max-retries: -1 is not an integer >= 0"),
        (["balance", "--json", "extra"], "unrecognized arguments: extra"),
    ],
    "mcp": [
        (["mcp", "--out", "OUT_IS_A_FILE"], "exists and is not a directory"),
        (["mcp", "--max-total-cost", "lots"], "--max-total-cost: 'lots' is not"),
        (["mcp", "--base-url", "http://example.com"], "unencrypted"),
        (["mcp", "--timeout", "-1"], "timeout: -1.0 is not a positive number"),
        (["mcp", "--max-retries", "many"], "--max-retries: 'many' is not an integer >= 0"),
        (["mcp", "--json"], "unrecognized arguments: --json"),  # stdout is the protocol's
    ],
}
CASES = [(command, argv, said) for command, cases in BAD_OPTIONS.items() for argv, said in cases]
# verify prints the plan it was asked to price before refusing it (issue 11 asks for that).
PLAN_FIRST = {("verify", "--max-cost", "0.00001")}


@pytest.mark.parametrize(
    ("command", "argv", "said"), CASES, ids=[" ".join(c[1])[:60] for c in CASES]
)
def test_every_bad_option_is_one_line_on_stderr_and_status_2_with_nothing_sent(
    command: str,
    argv: list[str],
    said: str,
    api: ReferenceServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(JSONL).write_text('{"prompt": "a fox", "width": 64, "height": 64}\n')
    Path("OUT_IS_A_FILE").write_text("")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        argv = [a.replace("PORT_IN_USE", str(taken.getsockname()[1])) for a in argv]
        code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    *before, line = err.splitlines()
    assert line.startswith("novita-flux")
    assert said in line
    if tuple(argv) in PLAN_FIRST:
        assert "price" in " ".join(before)
    else:
        assert before == []
    assert api.faults.api_requests == 0
    assert {path.name for path in Path().iterdir() if path.is_file()} == {JSONL, "OUT_IS_A_FILE"}


def test_the_table_covers_every_option_of_every_command() -> None:
    """A new option without a bad-value case above fails here."""
    subcommands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    takes_no_value = (argparse._StoreTrueAction, argparse._HelpAction, argparse._VersionAction)
    for name, parser in subcommands.choices.items():
        tried = {arg for argv, _ in BAD_OPTIONS[name] for arg in argv}
        for action in parser._actions:
            if isinstance(action, takes_no_value):
                continue
            if action.option_strings:
                assert tried & set(action.option_strings), f"{name} {action.option_strings}"
            else:
                assert any(len(argv) <= 2 for argv, _ in BAD_OPTIONS[name]), (name, action.dest)


# --- help, defaults, errors in the user's words -------------------------------------------------


def test_help_states_each_ranged_option_as_the_spec_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["generate", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # as argparse wraps it, unwrapped
    for name, default in [("width", 1024), ("height", 1024), ("steps", 4), ("image_num", 1)]:
        assert f"{describe(field_schema(name))}; default {default}" in text, name
    assert describe(field_schema("seed")) in text
    assert "NOVITA_API_KEY" in text
    assert "--api-key" not in text  # the key is never an option: shell histories keep them


def test_price_takes_the_same_defaults_as_generate(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "price") == (0, "$0.003\n", "")
    code, out, _ = run(capsys, "price", "--json", "--width", "512", "--height", "512")
    assert code == 0
    assert json.loads(out) == {
        "width": 512,
        "height": 512,
        "steps": 4,
        "image_num": 1,
        "cost": "0.00075",
        "currency": "USD",
    }


def test_a_missing_key_tells_a_shell_user_what_to_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    code, _, err = run(capsys, "generate", "x", "--out", str(tmp_path))
    assert code == 2
    (line,) = err.splitlines()
    assert "set NOVITA_API_KEY" in line
    assert "api_key=" not in line


def test_a_key_with_a_space_around_it_is_refused_in_one_line_without_being_shown(
    api: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("NOVITA_API_KEY", f" {api.api_key}")  # pasted with a space before it
    code, out, err = run(capsys, "generate", "x", "--width", "64", "--out", str(tmp_path))
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert "character 1 of" in line
    assert "(a space)" in line
    assert api.api_key not in line
    assert api.faults.api_requests == 0


def test_text_from_a_server_cannot_drive_the_terminal(
    api: ReferenceServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hostile = "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07 \x1b[2J\x1b[31mred\u202eevil\x07"
    api.faults.fail_next(1, reason="ILLEGAL_PROMPT", message=hostile)
    code, _, err = run(
        capsys, "generate", "x", "--width", "64", "--height", "64", "--out", str(tmp_path)
    )
    assert code == 1
    (line,) = err.strip().splitlines()[-1:]
    assert "ILLEGAL_PROMPT" in line
    assert "click" in line
    assert "red" in line
    assert all(ord(char) >= 32 and char not in "\x7f\u202e" for char in line)


# --- JSON, quiet, names -------------------------------------------------------------------------


def test_generate_json_pipes_into_a_json_reader_with_nothing_else_on_stdout(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "NOVITA_API_KEY"}
    command = (
        f"{sys.executable} -m novita_flux generate 'a fox' --width 64 --height 64 -n 2 --mock "
        f"--json --out {tmp_path} | {sys.executable} -c 'import json,sys; "
        "print(len([json.loads(l) for l in sys.stdin]))'"
    )
    bash = shutil.which("bash")
    assert bash is not None
    piped = subprocess.run(
        [bash, "-o", "pipefail", "-c", command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "2\n"
    argv = ["generate", "a fox", "--width", "64", "--height", "64", "--mock", "--json"]
    direct = subprocess.run(
        [sys.executable, "-m", "novita_flux", *argv, "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    (result,) = map(json.loads, direct.stdout.splitlines())
    assert Path(result["path"]).is_file()
    assert result["cost"] == "0.00001171875"
    assert "image(s)" in direct.stderr  # the talk goes to stderr


def test_quiet_leaves_stderr_empty_and_results_on_stdout(
    api: ReferenceServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run(
        capsys, "generate", "x", "--width", "64", "--height", "64", "-q", "--out", str(tmp_path)
    )
    assert (code, err) == (0, "")
    assert Path(out.split()[0]).is_file()


def test_batch_json_prints_one_object_per_line_it_worked_on(
    api: ReferenceServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"prompt": "a", "width": 64, "height": 64}\n{"prompt": "b", "width": 64, "height": 64}\n'
    )
    argv = [
        "batch",
        str(source),
        "--out",
        str(tmp_path / "o"),
        "--images-per-minute",
        "0",
        "--json",
    ]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["line"], r["status"], len(r["files"])) for r in results) == [
        (1, "saved", 1),
        (2, "saved", 1),
    ]


@pytest.mark.parametrize(
    ("prompt", "start"),
    [
        ("夕焼けの富士山、油絵", "夕焼けの富士山-油絵_"),
        ("Ｃａｆé crème", "café-crème_"),
        ("🐯🔥", "image_"),
    ],
)
def test_file_names_keep_the_letters_of_any_script(
    api: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    prompt: str,
    start: str,
) -> None:
    code, out, _ = run(
        capsys, "generate", prompt, "--width", "64", "--height", "64", "--out", str(tmp_path)
    )
    assert code == 0
    path = Path(out.split()[0])
    assert path.parent == tmp_path
    assert path.name.startswith(start)


def test_a_generate_that_cannot_save_after_paying_says_where_the_images_are(
    api: ReferenceServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(*_: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("novita_flux._base_client.publish", disk_full)
    code, _, err = run(
        capsys, "generate", "x", "--width", "64", "--height", "64", "--out", str(tmp_path)
    )
    assert code == 1
    (line,) = err.strip().splitlines()[-1:]
    ((task_id, _),) = api.faults.billed
    assert f"task {task_id}" in line
    assert "No space left on device" in line
    assert f"{api.image_base_url}/images/{task_id}/0.png?" in line
    assert " until 20" in line  # with the link's expiry


def test_the_librarys_warnings_are_notes_on_stderr_and_quiet_silences_them(
    api: ReferenceServer, tmp_path: Path
) -> None:
    """The library logs to a logger with only a NullHandler; the CLI gives it a handler of its own,
    so that what only the library says (here: an image that failed while the others of the
    call were saved) still reaches the user, as a note."""
    argv = [
        sys.executable,
        "-m",
        "novita_flux",
        "generate",
        "x",
        "--width",
        "64",
        "--max-retries",
        "0",
    ]
    said = {}
    for quiet in ([], ["-q"]):
        api.faults.cut_images_next(10)  # every try of the image ends early
        run = subprocess.run(
            [*argv, "--out", str(tmp_path / f"out{len(quiet)}"), *quiet],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "NOVITA_API_KEY": api.api_key, "NOVITA_BASE_URL": api.url},
        )
        assert run.returncode == 1
        said[bool(quiet)] = run.stderr.splitlines()
    *notes, error = said[False]
    assert any(note.startswith("the download of image 0 failed") for note in notes), notes
    assert error.startswith("novita-flux: PaidButNotSaved: ")
    (only,) = said[True]  # --quiet: the error line only
    assert only.startswith("novita-flux: PaidButNotSaved: ")


# --- the library's side of the same promises ----------------------------------------------------


def test_the_library_prints_nothing_itself_when_the_application_set_no_logging() -> None:
    code = (
        "import logging, novita_flux; "
        "logging.getLogger('novita_flux._images').warning('a warning of the library')"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stderr == ""  # Python's last-resort handler would have printed it
    handlers = logging.getLogger("novita_flux").handlers
    assert any(isinstance(handler, logging.NullHandler) for handler in handlers)


@pytest.mark.parametrize(
    ("base_url", "allowed"),
    [
        ("https://api.novita.ai", True),
        ("https://api.novita.ai/", True),
        ("http://localhost:8000", True),
        ("http://127.0.0.5:8000", True),
        ("http://[::1]:8000", True),
        ("http://api.example.com", False),
        ("http://10.0.0.2", False),
        ("https://api.novita.ai/v3beta", False),
        ("https://api.novita.ai/v3beta/flux-1-schnell", False),
        ("https://api.novita.ai?x=1", False),
    ],
)
def test_a_base_url_is_an_origin_and_plain_http_only_stays_on_this_machine(
    base_url: str, allowed: bool
) -> None:
    if allowed:
        assert FluxSchnell(api_key="k", base_url=base_url).base_url == base_url.rstrip("/")
        return
    with pytest.raises(ValidationError, match="base_url") as raised:
        FluxSchnell(api_key="k", base_url=base_url)
    if base_url.startswith("http://"):
        assert FluxSchnell(api_key="k", base_url=base_url, allow_insecure=True)
        assert "allow_insecure" in str(raised.value)
    else:
        assert "https://api.novita.ai'" in str(raised.value)  # the form it expects


def test_a_client_hanging_up_is_one_line_in_the_servers_log(
    novita_server: ReferenceServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = novita_server
    running.faults.latency = 0.5
    caplog.set_level(logging.WARNING, logger="novita_flux.testing")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            running.url + "/v3beta/flux-1-schnell",
            json={"prompt": "x", "width": 64, "height": 64, "seed": 1, "steps": 1, "image_num": 1},
            headers={"Authorization": f"Bearer {running.api_key}"},
            timeout=0.1,
        )
    deadline = time.monotonic() + 3
    while not caplog.records and time.monotonic() < deadline:
        time.sleep(0.05)
    (record,) = caplog.records
    assert (
        record.getMessage()
        == "client disconnected before the answer to POST /v3beta/flux-1-schnell"
    )
    assert record.exc_info is None


# --- layout -------------------------------------------------------------------------------------


def test_the_license_file_is_the_license_pyproject_names() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert "LICENSE" in project["license-files"]
