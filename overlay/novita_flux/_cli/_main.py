"""The parser of every command, and main: one line on stderr and a documented status for every
way a command can fail."""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from novita_flux._batch import check_concurrency
from novita_flux._cli import _balance, _gallery, _generate, _mcp, _serve, _verify
from novita_flux._cli._batch import run_batch
from novita_flux._cli._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    BadInput,
    Console,
    PaidButInterrupted,
    console_of,
)
from novita_flux._cli._options import (
    Parser,
    add_api_options,
    add_output_options,
    budget,
    checked,
    directory,
    integer,
    whole,
)
from novita_flux._cli._signals import terminated_as_interrupted
from novita_flux._constants import (
    API_KEY_ENV,
    DEFAULT_CONCURRENCY,
    KEY_HELP_URL,
    LOGGER_NAME,
    MAX_CONCURRENCY,
)
from novita_flux._errors import (
    BudgetExceededError,
    MissingAPIKeyError,
    NovitaError,
    ValidationError,
)
from novita_flux._spec import default_images_per_minute
from novita_flux._version import __version__

EPILOG = (
    f"The API key is read from {API_KEY_ENV}. Exit status: 0 success; 1 the API failed, a "
    "result that may have been billed is not saved, or a batch ran with some lines refused; 2 "
    "the input was refused and nothing was sent; 130 interrupted."
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="novita-flux",
        description="Novita AI FLUX.1 [schnell] text to image, from the command line.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=Parser
    )
    _generate.add_parsers(commands)
    _add_batch(commands)
    _gallery.add_parser(commands)
    _serve.add_parser(commands)
    _verify.add_parser(commands)
    _balance.add_parser(commands)
    _mcp.add_parser(commands)
    return parser


def _add_batch(commands: Any) -> None:
    batch = commands.add_parser(
        "batch",
        help="generate from a JSONL file, resumable, never paying twice",
        description="One JSON object per line: 'prompt' plus any of width, height, steps, "
        "seed, image_num, response_image_type ('#' lines and blank lines are skipped). Every "
        "line is checked and priced, and recorded in DIR/ledger.sqlite3, before anything is "
        "sent; images are saved as they arrive; DIR/manifest.jsonl lists every line. Running "
        "the same command again resumes: saved lines are skipped, paid ones downloaded, "
        "failed ones sent again with the seed first drawn for them; a request that may have "
        "been billed is reported and not sent again unless asked.",
        epilog="Ctrl-C (or SIGTERM) sends nothing more and waits for what is on the wire; a "
        "second one leaves at once. " + EPILOG,
    )
    batch.add_argument(
        "file", type=Path, metavar="FILE.jsonl", help="the requests, one JSON object per line"
    )
    batch.add_argument(
        "--out",
        type=directory,
        required=True,
        metavar="DIR",
        help="where the images, the ledger, the manifest and the gallery go (created if needed); "
        "the same DIR again resumes",
    )
    batch.add_argument(
        "--concurrency",
        type=checked(integer, check_concurrency, f"an integer in [1, {MAX_CONCURRENCY}]"),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help=f"requests in flight, an integer in [1, {MAX_CONCURRENCY}]; default "
        f"{DEFAULT_CONCURRENCY}",
    )
    batch.add_argument(
        "--images-per-minute",
        type=whole("images_per_minute", 0),
        metavar="N",
        help="pace requests to N images per rolling minute, an integer >= 0 (0: no pacing); "
        f"default the API's documented {default_images_per_minute()}, or none with --mock",
    )
    batch.add_argument(
        "--max-total-cost",
        type=budget,
        metavar="USD",
        help="refuse the batch, before sending anything, if what it would send costs more",
    )
    batch.add_argument(
        "--no-balance-check",
        action="store_true",
        help="start without reading the account's balance (by default a batch that costs more "
        "than the balance available is refused before anything is sent)",
    )
    batch.add_argument(
        "--resend-unknown",
        action="store_true",
        help="send again the requests that may have been billed (in flight when a run died, "
        "a timeout after sending, a server error after the task may have run): they may be "
        "paid twice",
    )
    batch.add_argument(
        "--regenerate-expired",
        action="store_true",
        help="generate again paid requests whose links expired before their images were "
        "saved (pays again)",
    )
    add_api_options(batch)
    add_output_options(batch)
    batch.set_defaults(run=run_batch)


class _Notes(logging.Handler):
    """The library's warnings (an image of another type than promised, ...), said as notes: the
    library logs them to a logger with only a NullHandler, so without this nobody would."""

    def __init__(self, console: Console) -> None:
        super().__init__(logging.WARNING)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.info(record.getMessage())
        except Exception:  # logging's rule: a handler that fails says so, and never raises
            self.handleError(record)


@contextlib.contextmanager
def library_notes(console: Console) -> Iterator[None]:
    logger = logging.getLogger(LOGGER_NAME)
    handler = _Notes(console)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def main(argv: Sequence[str] | None = None) -> int:
    console = Console()
    try:
        with terminated_as_interrupted():
            args = build_parser().parse_args(argv)
            console = console_of(args)
            with library_notes(console):
                code: int = args.run(args, console)
    except BadInput as error:
        console.error(error.line)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        console.error("novita-flux: interrupted")
        return EXIT_INTERRUPTED
    except PaidButInterrupted as error:  # what was paid for, and where it is, in one line
        console.error(f"novita-flux: {error}")
        return EXIT_INTERRUPTED
    except MissingAPIKeyError:
        console.error(
            f"novita-flux: no API key: set {API_KEY_ENV} (create a key at {KEY_HELP_URL}), "
            "or add --mock to run against the offline reference server"
        )
        return EXIT_BAD_INPUT
    except (ValidationError, BudgetExceededError) as error:
        console.error(f"novita-flux: {error}")
        return EXIT_BAD_INPUT
    except NovitaError as error:
        console.error(f"novita-flux: {type(error).__name__}: {error}")
        return EXIT_API_ERROR
    return code
