"""What every command shares: exit statuses, the refusal of bad input, where output goes, and
the client a command talks to (the API, or the reference server with --mock).

Results go to stdout (text, or with --json one JSON object per result); everything else
(progress, notes, errors) goes to stderr, so output can be piped. Text that came from a server
is stripped of control characters before it reaches a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any, TextIO

from novita_flux._client import FluxSchnell
from novita_flux._errors import NovitaError
from novita_flux._format import usd
from novita_flux._models import GeneratedImage, Generation
from novita_flux._progress import Progress

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """Input the CLI refuses before anything is sent (exit status 2): a command line argparse
    refuses, or a file, option or value a command refuses. `line` is what is printed: the
    message after `novita-flux: `, or alone when it names its command itself (`named`, as
    argparse's `novita-flux generate: --width: ...` does)."""

    def __init__(self, message: str, *, named: bool = False) -> None:
        super().__init__(message)
        self.line = message if named else f"novita-flux: {message}"


class PaidButInterrupted(NovitaError):
    """Interrupted after the request may have left (exit status 130): the message says what
    was paid for and where it still is."""

    possibly_billed = True


# Escape sequences a terminal would act on (colours, cursor moves, OSC titles and links).
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")


def clean(text: str) -> str:
    """Text safe to print on one line: escape sequences dropped, other control and format
    characters (C0, C1, bidi overrides) replaced by a space."""
    text = _ESCAPES.sub("", text)
    return "".join(" " if unicodedata.category(char) in ("Cc", "Cf") else char for char in text)


class Console:
    """Where a command speaks: results on stdout, the rest on stderr (silenced by --quiet,
    but for errors).

    A reader that stops reading (`novita-flux batch ... --json | head -1`) closes stdout under
    us: the results after that have nowhere to go, but the work behind them is recorded before
    it is printed, so nothing is lost. `stdout_closed` then says so, `on_stdout_closed` is told
    once (a batch sends nothing more), and stdout is pointed at the null device so that Python's
    own flush at exit does not fail a second time."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr
        self.stdout_closed = False
        self.on_stdout_closed: Callable[[], object] | None = None

    def info(self, message: str) -> None:
        if not self.quiet:
            print(clean(message), file=self.stderr, flush=True)

    def error(self, message: str) -> None:
        print(clean(message), file=self.stderr, flush=True)

    def result(self, data: dict[str, Any], text: str) -> None:
        """One result: its JSON object with --json, else its line of text."""
        if self.stdout_closed:
            return
        if self.json_mode:
            line = json.dumps(data, ensure_ascii=False, default=_jsonable)
            if not _encodable(line, self.stdout):  # JSON's own escapes say it in ASCII
                line = json.dumps(data, default=_jsonable)
        else:
            line = _printable(text, self.stdout)
        try:
            try:
                print(line, file=self.stdout, flush=True)
            except UnicodeEncodeError:  # a path with an undecodable byte ('\udcff'), say
                print(self._encodable(data, text), file=self.stdout, flush=True)
        except BrokenPipeError:
            self._closed()

    def _encodable(self, data: dict[str, Any], text: str) -> str:
        """The result as stdout can write it: JSON with \\u escapes (which read back as the same
        text), or the text with what cannot be written as a backslash escape."""
        if self.json_mode:
            return json.dumps(data, ensure_ascii=True, default=_jsonable)
        encoding = getattr(self.stdout, "encoding", None) or "utf-8"
        return text.encode(encoding, "backslashreplace").decode(encoding)

    def _closed(self) -> None:
        self.stdout_closed = True
        with contextlib.suppress(OSError, ValueError):  # stdout may not be a real file
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stdout.fileno())
            os.close(devnull)
        if self.on_stdout_closed is not None:
            self.on_stdout_closed()

    def progress(self, total: int, unit: str) -> Progress:
        return Progress(total, unit, self.stderr, enabled=not self.quiet)


def _encodable(text: str, stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None)
    if not isinstance(encoding, str):  # not a file (a StringIO takes any text)
        return True
    try:
        text.encode(encoding, getattr(stream, "errors", None) or "strict")
    except (UnicodeError, LookupError):
        return False
    return True


def _printable(text: str, stream: TextIO) -> str:
    """Text the stream can take: what its encoding cannot carry (a file name's undecodable
    byte, a character beyond a Latin-1 terminal) is written as a backslash escape, as Python
    writes it on stderr, instead of failing after the work is done."""
    if _encodable(text, stream):
        return text
    encoding = stream.encoding
    return text.encode(encoding, "backslashreplace").decode(encoding)


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return usd(value)  # money, exact, written as everywhere else
    return str(value)


def paid_links(generation: Generation, images: Iterable[GeneratedImage] | None = None) -> str:
    """`task T; image 0 at URL until WHEN; ...`: what it takes to fetch what was paid for."""
    chosen = generation.images if images is None else images
    links = "; ".join(
        f"image {image.index} at {image.url}"
        + (f" until {image.expires_at.isoformat()}" if image.expires_at else "")
        for image in chosen
    )
    return f"task {generation.task_id}; {links or 'no image links'}"


def console_of(args: Any) -> Console:
    return Console(json_mode=getattr(args, "json", False), quiet=getattr(args, "quiet", False))


def client_options(args: Any) -> dict[str, Any]:
    """The client settings a command was given (--base-url, --timeout, --max-retries, ...)."""
    names = ("base_url", "timeout", "max_retries", "retry_server_errors", "allow_insecure")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


@contextlib.contextmanager
def open_client(mock: bool, **options: Any) -> Iterator[FluxSchnell]:
    """The real API, or with `mock` the reference server on loopback (no key, no network)."""
    if not mock:
        with FluxSchnell(**options) as flux:
            yield flux
        return
    with (
        mock_server() as (url, key),
        FluxSchnell(**{**options, "api_key": key, "base_url": url}) as flux,
    ):
        yield flux


@contextlib.contextmanager
def mock_server() -> Iterator[tuple[str, str]]:
    """--mock: the reference server on loopback, as its URL and the key it takes."""
    try:
        from novita_flux.testing import ReferenceServer
    except ImportError as error:
        raise BadInput(f"--mock: {error}") from None
    with ReferenceServer() as server:
        yield server.url, server.api_key
