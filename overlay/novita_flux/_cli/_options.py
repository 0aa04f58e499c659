"""Options shared by the commands, each checked on the spot with the library's own checks (so
the range in an error and in `--help` is the spec's), and a parser that reports a bad option
in one line."""

from __future__ import annotations

import argparse
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
from novita_flux._schema import describe
from novita_flux._spec import default_base_url

T = TypeVar("T")

# The request fields a command takes as options, with the client's defaults.
REQUEST_DEFAULTS: dict[str, Any] = {
    "width": DEFAULT_WIDTH,
    "height": DEFAULT_HEIGHT,
    "steps": DEFAULT_STEPS,
    "image_num": DEFAULT_IMAGE_NUM,
}


class UsageError(Exception):
    """A command line argparse refuses (exit status 2, one line)."""


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (`novita-flux generate: argument --width: ...`)
    raised to main instead of a usage block and an exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Before Python 3.13, argparse drops a `--` given as an option's own value
        # (`--latency=--`) and leaves the option an empty list that no type has checked: it is
        # the value, as later Pythons read it, and is checked like any other.
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            value = self._get_value(action, "--")
            self._check_value(action, value)
            return value
        return super()._get_values(action, arg_strings)


def checked(parse: Callable[[str], T], check: Callable[[T], object]) -> Callable[[str], T]:
    """An argparse type: parse the text, then refuse it with the check's own message."""

    def convert(text: str) -> T:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {parse.__name__}") from None
        try:
            check(value)
        except NovitaError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return value

    convert.__name__ = parse.__name__
    return convert


def spec_field(name: str) -> Callable[[str], int]:
    """An integer request field, in the spec's range."""
    return checked(int, lambda value: validate_field(name, value))


def spec_help(name: str, default: object | None = None, note: str = "") -> str:
    """'an integer in [64, 2048]; default 1024', read from the spec."""
    text = describe(field_schema(name))
    if default is not None:
        text += f"; default {default}"
    return f"{text}{note}"


def budget(field: str) -> Callable[[str], Decimal]:
    """An argparse type for an amount in USD, refused with `field` named."""

    def convert(text: str) -> Decimal:
        try:
            return as_budget(text, field)
        except NovitaError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = "amount"
    return convert


def whole(field: str, minimum: int) -> Callable[[str], int]:
    return checked(int, lambda value: check_count(field, value, minimum))


seconds = checked(float, check_timeout)


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
        "-q", "--quiet", action="store_true", help="print nothing on stderr but errors"
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
