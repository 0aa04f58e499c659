"""Options shared by the commands, each checked on the spot with the library's own checks (so
the range in an error and in `--help` is the spec's), and a parser that reports a bad option
in one line."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from novita_flux._cli._common import BadInput
from novita_flux._config import check_count, check_timeout
from novita_flux._constants import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_HEIGHT,
    DEFAULT_IMAGE_NUM,
    DEFAULT_MAX_RETRIES,
    DEFAULT_STEPS,
    DEFAULT_TIMEOUT,
    DEFAULT_WIDTH,
)
from novita_flux._errors import NovitaError
from novita_flux._request import as_budget, field_schema, validate_field
from novita_flux._schema import describe, show
from novita_flux._spec import default_base_url

T = TypeVar("T")

# The request fields a command takes as options, with the client's defaults.
REQUEST_DEFAULTS: dict[str, Any] = {
    "width": DEFAULT_WIDTH,
    "height": DEFAULT_HEIGHT,
    "steps": DEFAULT_STEPS,
    "image_num": DEFAULT_IMAGE_NUM,
}


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`novita-flux generate: argument --width: ...`)
    raised to main instead of a usage block and an exit."""

    def error(self, message: str) -> NoReturn:
        # argparse's 'argument --steps: ...' as '--steps: ...': the option, then what is wrong.
        raise BadInput(f"{self.prog}: {message.removeprefix('argument ')}", named=True)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Before Python 3.13, argparse drops a `--` given as an option's own value
        # (`--latency=--`) and leaves the option an empty list that no type has checked: it is
        # the value, as later Pythons read it, and is checked like any other.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


# Numbers as people type them, in ASCII. Python's int() and float() also read the digits of other
# scripts ('\uff14' is 4), underscores ('1_0'), surrounding spaces, 'inf' and 'nan': none of them
# is a number a command line should take without a word.
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")


def integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def number(text: str) -> float:
    value = float(text) if _NUMBER.fullmatch(text) else math.nan
    if not math.isfinite(value):  # 1e309 reads as inf
        raise ValueError(text)
    return value


def checked(
    parse: Callable[[str], T], check: Callable[[T], object], expected: str
) -> Callable[[str], T]:
    """An argparse type: parse the text, then check the value; either refusal is one message,
    `'nan' is not an integer in [1, 100]` (argparse puts the option's name before it)."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise _not_a(show(text), expected, text) from None
        try:
            check(value)
        except NovitaError:
            raise _not_a(show(value), expected, text) from None
        return value

    convert.__name__ = parse.__name__
    return convert


def _not_a(shown: str, expected: str, text: str) -> argparse.ArgumentTypeError:
    foreign = any(char.isdigit() and not char.isascii() for char in text)
    hint = " (ASCII digits only)" if foreign else ""
    return argparse.ArgumentTypeError(f"{shown} is not {expected}{hint}")


def spec_field(name: str) -> Callable[[str], int]:
    """An integer request field, in the spec's range."""
    return checked(integer, lambda value: validate_field(name, value), describe(field_schema(name)))


def spec_help(name: str, default: object | None = None, note: str = "") -> str:
    """'an integer in [64, 2048]; default 1024', read from the spec."""
    text = describe(field_schema(name))
    if default is not None:
        text += f"; default {default}"
    return f"{text}{note}"


def budget(text: str) -> Decimal:
    """An argparse type for an amount in USD."""
    try:
        # Decimal() reads ' 1 ', '1_0', 'Infinity' and the digits of other scripts too.
        return as_budget(text if _NUMBER.fullmatch(text) else "NaN")
    except NovitaError:
        raise _not_a(show(text), "a non-negative amount in USD", text) from None


def whole(field: str, minimum: int) -> Callable[[str], int]:
    return checked(
        integer, lambda value: check_count(field, value, minimum), f"an integer >= {minimum}"
    )


def duration(text: str) -> float:
    """A number of seconds; `inf` (or a number too large for a float, `1e309`) is no limit."""
    if text.lower() in ("inf", "infinity"):
        return math.inf
    if not _NUMBER.fullmatch(text):
        raise ValueError(text)
    return float(text)


seconds = checked(duration, check_timeout, "a positive number of seconds (inf: no limit)")


def directory(text: str) -> Path:
    """An argparse type for a directory: Path('') is '.', so an empty value (an unset shell
    variable, `--out "$DIR"`) would write into the current directory without a word."""
    if not text:
        raise argparse.ArgumentTypeError("'' is not a directory ('.' is this one)")
    return Path(text)


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """--width, --height, --steps, -n: the same defaults wherever a request is described."""
    for flags, field, metavar, note in (
        (("--width",), "width", "PX", ""),
        (("--height",), "height", "PX", ""),
        (("--steps",), "steps", "N", ""),
        (("-n", "--image-num"), "image_num", "N", " images per call"),
    ):
        default = REQUEST_DEFAULTS[field]
        parser.add_argument(
            *flags,
            type=spec_field(field),
            default=default,
            metavar=metavar,
            help=spec_help(field, default, note),
        )


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object per result on stdout"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress or notes on stderr; errors, and what was refused, are still said",
    )


def add_api_options(parser: argparse.ArgumentParser) -> None:
    """How to reach the API. The key is read from the environment only, never an option: a
    command line is visible to every user of the machine and kept in shell histories."""
    api = parser.add_argument_group(f"the API (the key is read from {API_KEY_ENV})")
    api.add_argument(
        "--base-url",
        metavar="URL",
        help=f"the API's origin; default ${BASE_URL_ENV}, else {default_base_url()}",
    )
    api.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow a plain-http --base-url on another host (the key travels unencrypted)",
    )
    api.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"for each whole exchange, a positive number (inf: no limit); default "
        f"{DEFAULT_TIMEOUT:g}",
    )
    api.add_argument(
        "--max-retries",
        type=whole("max_retries", 0),
        metavar="N",
        help=f"retries of what cannot have been billed, an integer >= 0; default "
        f"{DEFAULT_MAX_RETRIES}",
    )
    api.add_argument(
        "--retry-server-errors",
        action="store_true",
        default=None,
        help="also retry server errors that may follow a billed task (may pay twice)",
    )
    api.add_argument(
        "--mock",
        action="store_true",
        help="use the offline reference server instead (needs the testing extra)",
    )


def writable_directory(path: Path) -> Path:
    """A directory files can be written to, created if needed: checked before anything is paid
    for, not discovered after."""
    try:
        if path.exists() and not path.is_dir():
            raise BadInput(f"--out {path}: exists and is not a directory")
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".novita-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise BadInput(f"--out {path}: cannot write there ({error.strerror or error})") from None
    return path
