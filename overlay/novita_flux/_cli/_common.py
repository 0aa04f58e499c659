"""What every command shares: exit statuses, the refusal of bad input, where messages go, and
the client a command talks to (the API, or the reference server with --mock)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from novita_flux._client import FluxSchnell

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class BadInput(Exception):
    """Input the CLI refuses before anything is sent (exit status 2)."""


def info(message: str) -> None:
    print(message, file=sys.stderr)


def client_options(args: Any) -> dict[str, Any]:
    """The client settings a command was given (--timeout, --max-retries, ...)."""
    names = ("base_url", "timeout", "max_retries", "retry_server_errors")
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


@contextlib.contextmanager
def open_client(mock: bool, **options: Any) -> Iterator[FluxSchnell]:
    """The real API, or with `mock` the reference server on loopback (no key, no network)."""
    if not mock:
        with FluxSchnell(**options) as flux:
            yield flux
        return
    try:
        from novita_flux.testing import ReferenceServer
    except ImportError as error:
        raise BadInput(f"--mock: {error}") from None
    with (
        ReferenceServer() as server,
        FluxSchnell(api_key=server.api_key, base_url=server.url, **options) as flux,
    ):
        yield flux
