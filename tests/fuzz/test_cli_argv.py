"""Every command's command line, fuzzed from its own parser: whatever the words, the command ends
with a documented exit status, says why in one line, never shows a traceback, and sends nothing
when it refuses.

The commands run in-process against the session's reference server (through NOVITA_BASE_URL
and NOVITA_API_KEY, as a user's shell would point them), with stdout and stderr encoded as a
terminal's are: stdout strictly in the terminal's encoding, stderr with backslash escapes.
`serve-mock` and `verify` are fuzzed up to the point where they would start their long work:
serve-mock binds its socket (the fuzz allows loopback only) and its app answers one request,
in-process; verify builds its plan, prices it and opens its client, and sends no probe.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import uvicorn
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import _retry, testing
from novita_flux._cli import _mcp_server, main
from novita_flux._cli._common import Console, clean
from novita_flux.testing import ReferenceServer
from novita_flux.verify import _run
from tests.fuzz.budget import fuzz
from tests.fuzz.cli import argvs, commands
from tests.fuzz.conftest import Inputs, OutsideAttempts

DOCUMENTED_STATUSES = (0, 1, 2, 130)
COMMANDS = commands()
PROGRESS = re.compile(r"^\[[#-]+\] ")
LINE_REPORT = re.compile(r"line [0-9]+: ")
# stdout as terminals encode it: a UTF-8 locale (Python's usual), and a Latin-1 one.
ENCODINGS = ("utf-8", "latin-1")

FUZZ = fuzz()


@attrs.frozen
class Ran:
    """What a command did: its status, its stdout (bytes, as a pipe gets them), its stderr, and
    the lines it said through its Console (errors apart)."""

    code: int
    out: bytes
    err: str
    said: list[str]
    errors: list[str]
    encoding: str = "utf-8"


class Terminal:
    """Runs `main` as a shell would, recording every line the Console says."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.said: list[str] = []
        self.errors: list[str] = []
        info, error = Console.info, Console.error

        def said_info(console: Console, message: str) -> None:
            if not console.quiet:
                self.said.append(clean(message))
            info(console, message)

        def said_error(console: Console, message: str) -> None:
            self.said.append(clean(message))
            self.errors.append(clean(message))
            error(console, message)

        monkeypatch.setattr(Console, "info", said_info)
        monkeypatch.setattr(Console, "error", said_error)
        self._monkeypatch = monkeypatch

    def run(self, argv: list[str], encoding: str = "utf-8") -> Ran:
        self.said, self.errors = [], []
        out, err = io.BytesIO(), io.BytesIO()
        stdout = io.TextIOWrapper(out, encoding=encoding, errors="strict", write_through=True)
        stderr = io.TextIOWrapper(err, encoding=encoding, errors="backslashreplace")
        with self._monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", stdout)
            patch.setattr(sys, "stderr", stderr)
            try:
                code = main(argv)
            except SystemExit as done:  # --help and --version, as argparse does them
                code = done.code if isinstance(done.code, int) else 2
            stderr.flush()
        said, errors = self.said, self.errors
        return Ran(code, out.getvalue(), err.getvalue().decode(encoding), said, errors, encoding)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    return Terminal(monkeypatch)


class Workspace:
    """A fresh working directory for each command line, holding the places cli.PLACES names: a
    batch file whose every line is valid (one small image), one whose every line is not, a
    directory, a file. Fresh, so that no command meets what an earlier one left."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch

    def fresh(self) -> Path:
        here = Path(tempfile.mkdtemp(prefix="run-", dir=self.root))
        self.monkeypatch.chdir(here)
        (here / "requests.jsonl").write_text('{"prompt": "a fox", "width": 64, "height": 64}\n')
        (here / "invalid.jsonl").write_bytes(
            b'{"prompt": ""}\nnot json\n[1]\n{"prompt": "\\ud800"}\n'
            b'{"prompt": "x", "width": 1e999}\n\xff\xfe\n' + b"[" * 100_000 + b"\n"
        )
        (here / "out").mkdir()
        (here / "a-file").write_bytes(b"not a directory")
        return here


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    return Workspace(tmp_path, monkeypatch)


@pytest.fixture
def long_commands_held(monkeypatch: pytest.MonkeyPatch) -> None:
    """serve-mock, verify and mcp stop where their long work would begin: uvicorn's loop does not
    start (the app serve-mock built answers one request in-process instead, with no latency),
    and verify's runner sends no probe."""
    keys: dict[int, str] = {}
    create_app, serve = testing.create_app, uvicorn.Server.run

    def created(**options: Any) -> Any:
        app = create_app(**options)
        keys[id(app)] = options["api_key"]
        return app

    def run(server: uvicorn.Server, sockets: list[Any] | None = None) -> None:
        if id(server.config.app) not in keys:  # a ReferenceServer (--mock): served for real
            serve(server, sockets)
            return
        for sock in sockets or ():
            sock.close()
        app = server.config.app
        app.state.faults.latency = 0.0
        asyncio.run(_one_request(app, keys[id(app)]))

    def no_probes(runner: Any, probes: Any) -> tuple[list[Any], str]:
        return [], "the fuzz sends no probe"

    async def no_session(flux: Any, out: Any, budget: Any) -> None:
        """mcp: the client is built and checked; the stdio session is not started."""

    monkeypatch.setattr(testing, "create_app", created)
    monkeypatch.setattr(uvicorn.Server, "run", run)
    monkeypatch.setattr(_run._Runner, "run", no_probes)
    monkeypatch.setattr(_mcp_server, "serve_stdio", no_session)


async def _one_request(app: Any, key: str) -> None:
    """A small generation and the download of its image, as a client would ask for them."""
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.post(
            "/v3beta/flux-1-schnell",
            json={"prompt": "x", "width": 64, "height": 64, "seed": 1, "steps": 1, "image_num": 1},
            headers={"Authorization": f"Bearer {key}"},
        )
        if answer.status_code != 200:  # paced (--images-per-minute), or --balance too small
            assert answer.json()["reason"] in ("RATE_LIMIT_EXCEEDED", "BILLING_BALANCE_NOT_ENOUGH")
            return
        if answer.status_code == 200:
            link = answer.json()["images"][0]["image_url"]
            assert (await client.get(link)).status_code == 200


@pytest.fixture
def cli(
    novita_server: ReferenceServer,
    monkeypatch: pytest.MonkeyPatch,
    workspace: Workspace,
    long_commands_held: None,
) -> ReferenceServer:
    """The CLI pointed at the reference server, with no real waiting between retries."""
    monkeypatch.setenv("NOVITA_API_KEY", novita_server.api_key)
    monkeypatch.setenv("NOVITA_BASE_URL", novita_server.url)
    monkeypatch.setattr(_retry, "sleep", lambda seconds: None)
    workspace.fresh()
    return novita_server


def check_contract(
    ran: Ran,
    server: ReferenceServer,
    outside: OutsideAttempts,
    *,
    local: bool = False,
) -> None:
    """What every command promises, whatever it was given. `local`: the command binds, it does
    not send (serve-mock)."""
    assert ran.code in DOCUMENTED_STATUSES, ran
    assert "Traceback" not in ran.err, ran.err
    # Everything on stderr is a line the command meant to say (or its progress bar).
    # (Split at newlines only: a U+2028 inside a line is not the end of it.)
    lines = [line for line in ran.err.split("\n")[:-1] if not PROGRESS.match(line)]
    assert ran.err == "" or ran.err.endswith("\n"), ran.err
    encoding = ran.encoding
    encoded = [line.encode(encoding, "backslashreplace").decode(encoding) for line in ran.said]
    assert lines == encoded, (lines, ran.said)
    # One error line for the command; a batch also reports each line of its input that failed
    # (`line N: ...`), so that --quiet never hides one.
    command_errors = [line for line in ran.errors if not LINE_REPORT.match(line)]
    assert len(command_errors) <= 1, ran.errors
    if ran.code != 0 and not ran.errors:
        # No error line: the command's own verdict said why (a batch's lines, verify's report).
        assert ran.said or ran.out, ran
    if ran.code == 2:  # refused: nothing was sent anywhere
        assert server.faults.api_requests == 0, ran
        assert server.faults.image_requests == 0, ran
        assert local or not outside, (outside, ran)


def _outcome(ran: Ran) -> str:
    return f"exit {ran.code}"


def _fresh(server: ReferenceServer, outside: OutsideAttempts, workspace: Workspace) -> None:
    server.faults.reset()
    outside.clear()
    workspace.fresh()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@FUZZ
@given(data=st.data())
def test_any_command_line_ends_in_a_documented_status_with_one_line(
    command: str,
    data: st.DataObject,
    cli: ReferenceServer,
    terminal: Terminal,
    offline: OutsideAttempts,
    inputs: Inputs,
    workspace: Workspace,
) -> None:
    argv = data.draw(argvs(command, COMMANDS[command]), label="argv")
    encoding = data.draw(st.sampled_from(ENCODINGS), label="stdout encoding")
    _fresh(cli, offline, workspace)
    ran = terminal.run(argv, encoding)
    inputs.took(f"cli {command}", _outcome(ran))
    # serve-mock only binds; a batch's lines are all valid or all invalid (see Workspace)
    check_contract(ran, cli, offline, local=command == "serve-mock")


@FUZZ
@given(argv=st.lists(st.sampled_from(["--version", "--help", "-h", "nope", "", "-", "--x"])))
def test_any_words_before_a_command_end_in_a_documented_status(
    argv: list[str],
    cli: ReferenceServer,
    terminal: Terminal,
    offline: OutsideAttempts,
    inputs: Inputs,
    workspace: Workspace,
) -> None:
    _fresh(cli, offline, workspace)
    ran = terminal.run(argv)
    inputs.took("cli (no command)", _outcome(ran))
    check_contract(ran, cli, offline)


# --- the cases issue 20 reports, each as a user meets it ------------------------------------


def test_a_prompt_from_a_latin1_terminal_is_refused_in_one_line_naming_the_field(
    cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    for extra in (["--dry-run"], []):
        ran = terminal.run(["generate", "caf\udce9", *extra])
        check_contract(ran, cli, offline)
        assert ran.code == 2
        (line,) = ran.errors
        assert line.startswith("novita-flux: prompt: ")
        assert "U+DCE9" in line


@pytest.mark.parametrize("timeout", ["inf", "1e12", "1e309"])
def test_a_timeout_past_what_a_socket_can_wait_means_no_limit(
    timeout: str, cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    argv = ["generate", "a fox", "--width", "64", "--height", "64", "--timeout", timeout]
    ran = terminal.run(argv)
    check_contract(ran, cli, offline)
    assert ran.code == 0, ran
    assert cli.faults.api_requests == 1


def test_dry_run_json_of_a_non_latin1_prompt_prints_on_a_latin1_terminal(
    cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    ran = terminal.run(["generate", "renard 狐 ☕", "--dry-run", "--json"], "latin-1")
    check_contract(ran, cli, offline)
    assert ran.code == 0
    assert json.loads(ran.out)["request"]["prompt"] == "renard 狐 ☕"


# --- found by this fuzz -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["serve-mock", "--latency=--"],
        ["verify", "--record=--"],
        ["price", "--width=--"],
    ],
)
def test_a_double_dash_given_as_an_option_value_is_read_as_that_value(
    argv: list[str], cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    """Python before 3.13 drops it and leaves the option an unchecked empty list (a TypeError
    or AttributeError later); it is the value, and is checked like any other."""
    ran = terminal.run(argv)
    check_contract(ran, cli, offline)
    if argv[0] == "verify":  # a directory may be named `--` (the fuzz sends no probe)
        assert Path("--").is_dir(), ran
    else:
        assert ran.code == 2
        assert "'--'" in ran.errors[0]


@pytest.mark.parametrize("key", [" ", " key", "key\udc80", "k\x7fey", "ключ"])
def test_serve_mock_refuses_a_key_no_client_can_send(
    key: str, cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    ran = terminal.run(["serve-mock", "--api-key", key, "--port", "0"])
    check_contract(ran, cli, offline, local=True)
    assert ran.code == 2
    assert "--api-key: " in ran.errors[0]
    assert "a key a client can send" in ran.errors[0]


def test_a_path_with_a_byte_that_is_not_utf8_is_printed_escaped_not_a_crash(
    cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    """`--out $'caf\\xe9'` from a Latin-1 terminal: the images are saved under that name, and
    the line that says where is printed with the byte escaped."""
    argv = ["generate", "a fox", "--width", "64", "--height", "64", "--out", "caf\udce9"]
    ran = terminal.run(argv)
    check_contract(ran, cli, offline)
    assert ran.code == 0, ran
    assert ran.out.startswith(b"caf\\udce9/a-fox_64x64_s4_seed")
    assert len(list(Path(os.fsdecode(b"caf\xe9")).glob("*.png"))) == 1
    ran = terminal.run([*argv, "--json"])
    assert json.loads(ran.out)["path"].startswith("caf\udce9/")


def test_an_out_directory_whose_name_is_too_long_is_refused_before_anything_is_sent(
    cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    ran = terminal.run(["generate", "a fox", "--out", "x" * 300])
    check_contract(ran, cli, offline)
    assert ran.code == 2
    assert ran.errors[0].endswith("cannot write there (File name too long)")


@pytest.mark.parametrize("host", ["\udc80", "a..b", "a" * 64])
def test_serve_mock_on_a_host_no_lookup_can_take_says_so_in_one_line(
    host: str, cli: ReferenceServer, terminal: Terminal, offline: OutsideAttempts
) -> None:
    ran = terminal.run(["serve-mock", "--host", host, "--port", "0"])
    check_contract(ran, cli, offline, local=True)
    assert ran.code == 2
    assert ran.errors[0].startswith(f"novita-flux: serve-mock: cannot listen on {host}:0: ")
