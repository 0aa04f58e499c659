"""`novita-flux serve-mock`: the reference server in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from novita_flux._cli._common import EXIT_OK, BadInput, Console
from novita_flux._cli._options import budget, checked, integer, number, whole
from novita_flux._config import check_api_key
from novita_flux._errors import ValidationError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")  # uvicorn's
PROFILES = ("documented", "observed")  # novita_flux.testing's, without importing it here


def add_parser(commands: Any) -> None:
    serve = commands.add_parser(
        "serve-mock",
        help="run the offline reference server in the foreground",
        description="The reference server (novita_flux.testing) on HOST:PORT; images are "
        "served from the same port. Needs the testing extra.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    serve.add_argument(
        "--port",
        type=checked(integer, _check_port, "an integer in [0, 65535]"),
        default=8000,
        help="an integer in [0, 65535] (0: any free port); default 8000",
    )
    serve.add_argument(
        "--api-key",
        type=checked(str, _check_key, "a key a client can send (visible ASCII, no spaces)"),
        default="test-key",
        help="the one key it accepts; default test-key",
    )
    serve.add_argument(
        "--latency",
        type=checked(number, _check_latency, "a number >= 0"),
        default=0.0,
        metavar="SECONDS",
        help="added to every API call, a number >= 0; default 0",
    )
    serve.add_argument(
        "--image-url-ttl",
        type=whole("image_url_ttl", 0),
        default=3600,
        metavar="SECONDS",
        help="how long image links stay valid, an integer >= 0 (0: they never expire); "
        "default 3600",
    )
    serve.add_argument(
        "--images-per-minute",
        type=whole("images_per_minute", 1),
        metavar="N",
        help="the per-key limit, an integer >= 1; default none",
    )
    serve.add_argument(
        "--balance",
        type=budget,
        metavar="USD",
        help="what the account may spend: each task takes its exact price from it, and one it "
        "cannot pay for is refused BILLING_BALANCE_NOT_ENOUGH; default unlimited",
    )
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="default info")
    serve.add_argument(
        "--profile",
        choices=PROFILES,
        default="documented",
        help="answer as the docs page draws it, or as the real API was seen to; default documented",
    )
    serve.set_defaults(run=cmd_serve_mock)


def cmd_serve_mock(args: argparse.Namespace, console: Console) -> int:
    try:
        from novita_flux.testing import create_app, serve
    except ImportError as error:
        raise BadInput(f"serve-mock: {error}") from None
    app = create_app(
        api_key=args.api_key,
        image_url_ttl=args.image_url_ttl,
        images_per_minute=args.images_per_minute,
        latency=args.latency,
        profile=args.profile,
        balance=args.balance,
    )
    try:
        serve(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            on_ready=lambda url: console.info(
                f"reference server on {url} (API key {args.api_key!r}); Ctrl-C stops it"
            ),
        )
    except (OSError, UnicodeError) as error:  # a host no lookup can take: a UnicodeError
        why = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise BadInput(f"serve-mock: cannot listen on {args.host}:{args.port}: {why}") from None
    return EXIT_OK


def _check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise ValidationError("port", port, "an integer in [0, 65535]", f"port: {port} is not "
                              "an integer in [0, 65535]")  # fmt: skip


def _check_latency(seconds: float) -> None:
    if not seconds >= 0:  # NaN too
        raise ValidationError("latency", seconds, "a number >= 0", f"latency: {seconds} is "
                              "not a number >= 0")  # fmt: skip


def _check_key(key: str) -> None:
    """A key no client can send (empty, with a space, a control or a non-ASCII character)
    would lock every client out of the server: refused with the client's own rule."""
    if not key:
        raise ValidationError("api_key", key, "a non-empty string", "api_key: must not be empty")
    if check_api_key(key) != key:  # the client's rule refuses what it cannot send...
        raise ValidationError(  # ...and would strip surrounding spaces: refused here too
            "api_key", key, "visible ASCII characters", "api_key: a key has no spaces"
        )
