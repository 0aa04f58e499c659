"""Every code block of README.md, CONTRIBUTING.md and docs/ is run, the way a reader would.

Sybil parses each Markdown file and keeps one namespace per file, so a block may use what an
earlier block of the same file made; this module decides how each block is run, by its language
and by a `<!-- docs: ... -->` comment on the line above it (invisible on the page):

- `python`: run against the reference server (the pytest plugin's `novita_server`, reached
  through NOVITA_API_KEY and NOVITA_BASE_URL, as a user's code reads them), in the file's own
  scratch directory; top-level `await` is allowed and runs on the file's one event loop. A block
  that starts with `>>>` is a doctest: its shown output is compared.
- `python` under `<!-- docs: pytest -->`: a test file, run by pytest in a subprocess; every test
  in it must pass.
- `console`: a terminal session. `$ ` starts a command (`> ` continues it, as bash shows a
  heredoc); the lines after it are its output (stdout and stderr, as a terminal shows them),
  compared with `...` matching anything, when any are shown. A command must exit 0 unless the
  next command is `echo $?`, which shows its status.
- `bash`: a script; it stops at the first command that fails, which fails the example.
- `yaml`, `json`, `toml`: parsed; under `<!-- docs: excerpt PATH -->`, each must also be a part
  of the file at PATH (so a quoted piece of the spec cannot drift from the spec).
- Shell blocks run with the same environment as Python blocks, in the file's scratch directory;
  under `<!-- docs: repo -->`, in a copy of the checkout (its `.venv` linked, so `make` targets
  run without installing). The port the docs use for a server of their own, 8765, is a free one
  in each run, so that parallel runs cannot collide.
- Any other block must say why it is not run: `<!-- docs: not-run REASON -->`. A block with no
  language, or a language this module does not know, fails the file.

Why Sybil and not pytest-examples: Sybil keeps a namespace per document and lets each kind of
block have its own evaluator; pytest-examples runs Python only, and would have needed a runner
of our own for the shell sessions anyway.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sybil import Document, Example, Region
from sybil.evaluators.doctest import DocTestEvaluator
from sybil.evaluators.python import pad
from sybil.parsers.abstract.doctest import DocTestStringParser
from sybil.parsers.markdown.lexers import FencedCodeBlockLexer

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda path: path.relative_to(ROOT).as_posix(),
)
DOCS_PORT = "8765"  # the port the docs give a server they start; swapped for a free one
TIMEOUT = 180  # seconds for one block: a block that hangs fails instead of stalling the suite
RUN_LANGUAGES = ("python", "console", "bash", "yaml", "json", "toml")
_DIRECTIVE = re.compile(r"<!--\s*docs:\s*(?P<word>[\w-]+)\s*(?P<rest>.*?)\s*-->\s*\Z", re.DOTALL)
_MARK = "\x1edocs-example-status "  # ends each command's output in a console session


@dataclass
class Block:
    """A fenced block, with what the comment above it says about how to run it."""

    language: str
    source: Any  # a sybil Lexeme: a str that knows its line offset
    directive: str = ""
    argument: str = ""


@dataclass
class Context:
    """What one document's blocks share: where they run, with which environment and loop."""

    scratch: Path
    env: dict[str, str]
    loop: asyncio.AbstractEventLoop
    counts: Counter[str] = field(default_factory=Counter)
    repo: Path | None = None

    def checkout(self) -> Path:
        """A copy of the checkout (its tracked and new files, as git lists them), made once per
        document, for commands that read or write the repository's own files."""
        if self.repo is None:
            self.repo = self.scratch / "novita-flux"
            listed = subprocess.run(
                [_program("git"), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            ).stdout.decode()
            for name in filter(None, listed.split("\0")):
                source = ROOT / name
                if source.is_file() and not source.is_symlink():
                    target = self.repo / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, target)  # mtimes kept: make sees nothing to rebuild
            # The checkout's commands, and a stamp of its own newer than the copied
            # pyproject.toml: `make` in the copy never installs (which would point the shared
            # environment's editable install at the copy).
            venv = self.repo / ".venv"
            venv.mkdir()
            for entry in (ROOT / ".venv").iterdir():
                if not entry.name.startswith("."):
                    (venv / entry.name).symlink_to(entry)
            (venv / ".installed-stamp").touch()
            (self.repo / "src").symlink_to("overlay")
        return self.repo


def context(example: Example) -> Context:
    found: Context = example.namespace["__docs__"]
    return found


# -- parsing --------------------------------------------------------------------------------


def parse_blocks(document: Document) -> Iterator[Region]:
    """A Sybil parser: every fenced block, as a Region evaluated by how it is to be run."""
    lexer = FencedCodeBlockLexer(
        language=r"[^\n]*", mapping={"language": "language", "source": "source"}
    )
    for region in lexer(document):
        language = region.lexemes["language"].strip()
        word, argument = _directive_before(document.text, region.start)
        block = Block(language, region.lexemes["source"], word, argument)
        if language == "python" and not word and block.source.startswith(">>>"):
            yield from _doctests(document, region, block)
            continue
        region.parsed = block
        region.evaluator = evaluate
        yield region


def _directive_before(text: str, start: int) -> tuple[str, str]:
    """The `<!-- docs: WORD ARGUMENT -->` on the lines just above a block, if any."""
    before = text[:start].rstrip()
    opening = before.rfind("<!--")
    if opening == -1:
        return "", ""
    match = _DIRECTIVE.match(before[opening:])
    if match is None:
        return "", ""
    return match["word"], match["rest"]


_DOCTEST = DocTestStringParser(DocTestEvaluator(doctest.ELLIPSIS))


def _doctests(document: Document, region: Region, block: Block) -> Iterator[Region]:
    source = block.source
    for found in _DOCTEST(source, document.path):
        found.adjust(region, source)
        evaluator = found.evaluator

        def counted(example: Example, evaluator: Any = evaluator) -> Any:
            context(example).counts["doctest"] += 1
            return evaluator(example)

        found.evaluator = counted
        yield found


# -- evaluation -----------------------------------------------------------------------------


def evaluate(example: Example) -> None:
    block: Block = example.parsed
    where = f"{Path(example.path).relative_to(ROOT)}, line {example.line}"
    if block.directive == "not-run":
        assert block.argument, f"{where}: `<!-- docs: not-run REASON -->` needs its reason"
        context(example).counts["not run"] += 1
        return
    if block.directive not in ("", "pytest", "repo", "excerpt"):
        raise AssertionError(f"{where}: unknown directive `docs: {block.directive}`")
    runner = {
        "python": _python,
        "console": _console,
        "bash": _bash,
        "yaml": _data,
        "json": _data,
        "toml": _data,
    }.get(block.language)
    if runner is None:
        raise AssertionError(
            f"{where}: a ```{block.language or '(no language)'} block: give it one of "
            f"{', '.join(RUN_LANGUAGES)}, or say why it is not run (`<!-- docs: not-run "
            "REASON -->` above it)"
        )
    runner(example, block, where)
    context(example).counts[block.language if block.directive != "pytest" else "pytest"] += 1


def _python(example: Example, block: Block, where: str) -> None:
    ctx = context(example)
    if block.directive == "pytest":
        _pytest_file(ctx, block, where)
        return
    source = pad(block.source, example.line + block.source.line_offset)
    code = compile(
        source, example.path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
    )
    result = eval(code, example.namespace)  # noqa: S307  (the docs' own code, as a reader runs it)
    if inspect.iscoroutine(result):
        ctx.loop.run_until_complete(result)
    example.namespace.pop("__builtins__", None)


def _pytest_file(ctx: Context, block: Block, where: str) -> None:
    """A block of tests is a test file: run as a user runs it, and every test passes."""
    tests = len(re.findall(r"^(?:async )?def test_", block.source, re.MULTILINE))
    assert tests, f"{where}: a `docs: pytest` block defines no test"
    folder = ctx.scratch / f"pytest-{ctx.counts['pytest']}"
    folder.mkdir()
    (folder / "test_example.py").write_text(block.source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"],
        cwd=folder,
        env=ctx.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 0, f"{where}: the tests failed:\n{said[-3000:]}"
    assert f"{tests} passed" in said, f"{where}: expected {tests} passed:\n{said[-3000:]}"


def _data(example: Example, block: Block, where: str) -> None:
    try:
        loaded = _load(block.language, block.source)
    except Exception as error:
        raise AssertionError(f"{where}: not valid {block.language}: {error}") from None
    if block.directive == "excerpt":
        path = ROOT / block.argument
        whole = _load(path.suffix.lstrip(".").replace("yml", "yaml"), path.read_text("utf-8"))
        assert _anywhere(whole, loaded), f"{where}: not a part of {block.argument} as it is now"


def _load(language: str, text: str) -> Any:
    if language == "yaml":
        return yaml.safe_load(text)
    if language == "json":
        return json.loads(text)
    return tomllib.loads(text)


def _contains(whole: Any, part: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and _contains(whole[key], value) for key, value in part.items()
        )
    return bool(whole == part)


def _anywhere(whole: Any, part: Any) -> bool:
    if _contains(whole, part):
        return True
    children = (
        whole.values() if isinstance(whole, dict) else whole if isinstance(whole, list) else ()
    )
    return any(_anywhere(child, part) for child in children)


# -- shell ----------------------------------------------------------------------------------


@dataclass
class Command:
    text: str
    line: int  # in the document
    shown: list[str] = field(default_factory=list)


def session(source: str, first_line: int) -> list[Command]:
    """A console block as commands and the output shown after each."""
    commands: list[Command] = []
    for offset, line in enumerate(source.splitlines()):
        if line.startswith("$ "):
            commands.append(Command(line[2:], first_line + offset))
        elif not commands:
            raise AssertionError(f"line {first_line + offset}: output before any `$ ` command")
        elif line.startswith("> ") or line == ">" or commands[-1].text.endswith("\\"):
            commands[-1].text += "\n" + line.removeprefix(">").removeprefix(" ")
        else:
            commands[-1].shown.append(line)
    return commands


def _console(example: Example, block: Block, where: str) -> None:
    ctx = context(example)
    commands = session(block.source, example.line + block.source.line_offset + 1)
    assert commands, f"{where}: a console block without a `$ ` command"
    script = [
        f"{command.text}\n__rc=$?; printf '\\n{_MARK}%d\\n' $__rc; (exit $__rc)"
        for command in commands
    ]
    output = _run_shell(ctx, block, "\n".join(script), where)
    pieces = output.split(_MARK)
    assert len(pieces) == len(commands) + 1, (
        f"{where}: the session stopped early:\n{output[-3000:]}"
    )
    checker = doctest.OutputChecker()
    for index, command in enumerate(commands):
        said = pieces[index] if index == 0 else pieces[index].split("\n", 1)[1]
        said = _as_a_terminal_shows(said.rstrip("\n"))
        status = int(pieces[index + 1].split("\n", 1)[0])
        shows_status = index + 1 < len(commands) and commands[index + 1].text.strip() == "echo $?"
        place = f"{Path(example.path).relative_to(ROOT)}, line {command.line}: $ {command.text}"
        if status != 0 and not shows_status:
            raise AssertionError(f"{place}\nexited {status} (show it with `echo $?`):\n{said}")
        if command.shown:
            want = "\n".join(command.shown).replace(DOCS_PORT, ctx.env["DOCS_PORT"]) + "\n"
            if not checker.check_output(want, said + "\n", doctest.ELLIPSIS):
                raise AssertionError(f"{place}\nshown:\n{want}\nprinted:\n{said}\n")


def _as_a_terminal_shows(text: str) -> str:
    """A progress line redrawn with carriage returns, as its last drawing."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _bash(example: Example, block: Block, where: str) -> None:
    script = (
        "set -eo pipefail\n"
        "trap 'echo \"failed: line $LINENO of the block: $BASH_COMMAND (exit $?)\"' ERR\n"
        + block.source
    )
    _run_shell(context(example), block, script, where, must_succeed=True)


def _run_shell(
    ctx: Context, block: Block, script: str, where: str, *, must_succeed: bool = False
) -> str:
    cwd = ctx.checkout() if block.directive == "repo" else ctx.scratch
    script = script.replace(DOCS_PORT, ctx.env["DOCS_PORT"])
    log = ctx.scratch / ".shell-output"
    with log.open("wb") as out:
        # A session of its own: whatever it leaves running in the background is ended after it.
        process = subprocess.Popen(
            [_program("bash"), "-c", script],
            cwd=cwd,
            env=ctx.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            status = process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            _end_group(process.pid)
    output = log.read_text("utf-8", errors="replace")
    if status is None:
        raise AssertionError(f"{where}: still running after {TIMEOUT} s:\n{output[-3000:]}")
    if must_succeed and status != 0:
        raise AssertionError(f"{where}: exited {status}:\n{output[-3000:]}")
    return output


def _end_group(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(50):
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)


def _program(name: str) -> str:
    found = shutil.which(name)
    assert found, f"the docs' examples need {name} on PATH"
    return found


def free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


def environment(api_key: str, base_url: str) -> dict[str, str]:
    """What a reader's shell would have: the venv's commands first, the key and base URL of the
    reference server, and nothing of the running pytest."""
    # Not what `make test` or pytest set for their children: a nested make would say which
    # directory it enters, which no reader's shell prints.
    inherited = ("PYTEST_", "MAKE", "MFLAGS")
    env = {key: value for key, value in os.environ.items() if not key.startswith(inherited)}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        NOVITA_API_KEY=api_key,
        NOVITA_BASE_URL=base_url,
        PYTHONUNBUFFERED="1",
        COLUMNS="100",
        DOCS_PORT=free_port(),
    )
    env.pop("HYPOTHESIS_PROFILE", None)
    return env
