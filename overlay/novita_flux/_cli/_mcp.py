"""`novita-flux mcp`: the tools of _mcp_server over stdio, against the API or, with --mock, the
reference server. stdout carries the protocol: everything else goes to stderr."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from novita_flux._cli._common import EXIT_OK, BadInput, Console, client_options
from novita_flux._cli._options import add_api_options, budget, writable_directory
from novita_flux._client import AsyncFluxSchnell
from novita_flux._errors import NovitaError

HINT = "pip install 'novita-flux[mcp]'"


def add_parser(commands: Any) -> None:
    mcp = commands.add_parser(
        "mcp",
        help="serve the client to LLM agents over the Model Context Protocol (stdio)",
        description="A Model Context Protocol server on stdin/stdout with three tools: "
        "generate_image (saves into --out and returns the paths, task id, seed, exact cost and "
        "a preview), estimate_cost and balance. Each tool's input schema is the spec's own. "
        f"Needs the mcp extra ({HINT}).",
        epilog="A request out of range, or past --max-total-cost, is refused before anything "
        "is sent; a paid image that could not be saved is returned as its task id and links.",
    )
    mcp.add_argument(
        "--out",
        type=Path,
        default=Path("out"),
        metavar="DIR",
        help="where images are saved; default out/",
    )
    mcp.add_argument(
        "--max-total-cost",
        type=budget,
        metavar="USD",
        help="the most this server may spend while it runs; a call past it is refused before "
        "it is sent (default: no limit)",
    )
    add_api_options(mcp)
    mcp.set_defaults(run=cmd_mcp)


def cmd_mcp(args: argparse.Namespace, console: Console) -> int:
    try:
        import mcp  # noqa: F401  (here: `import novita_flux` never imports it)
    except ImportError as error:
        raise BadInput(f"mcp: {error} ({HINT})") from None
    import asyncio

    from novita_flux._cli._mcp_server import serve_stdio

    if sys.stdin is None or sys.stdout is None:  # closed: nothing to speak the protocol on
        raise BadInput("mcp: stdin and stdout must be open: the protocol runs over them")
    out = writable_directory(args.out)

    async def serve() -> None:
        with _api(args) as (options, label):
            async with AsyncFluxSchnell(**options) as flux:
                console.info(f"novita-flux mcp: serving {label} on stdio; images into {out}")
                await serve_stdio(flux, out, args.max_total_cost)

    try:
        asyncio.run(serve())
    except ExceptionGroup as group:  # the SDK's task group: stdin or stdout failed under it
        raise SessionEnded(_first(group)) from None
    except OSError as error:
        raise SessionEnded(error) from None
    return EXIT_OK


class SessionEnded(NovitaError):
    """The stdio session broke (stdin unreadable, stdout closed): said in one line, exit 1."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"the MCP session on stdio ended: {type(cause).__name__}: {cause}")


def _first(group: BaseExceptionGroup[Any]) -> BaseException:
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup) and found.exceptions:
        found = found.exceptions[0]
    return found


@contextlib.contextmanager
def _api(args: argparse.Namespace) -> Iterator[tuple[dict[str, Any], str]]:
    """The client options for the API, or with --mock for a reference server on loopback."""
    options = client_options(args)
    if not args.mock:
        yield options, options.get("base_url") or "the API"
        return
    try:
        from novita_flux.testing import ReferenceServer
    except ImportError as error:
        raise BadInput(f"--mock: {error}") from None
    options.pop("base_url", None)
    with ReferenceServer() as server:
        yield {**options, "api_key": server.api_key, "base_url": server.url}, server.url
