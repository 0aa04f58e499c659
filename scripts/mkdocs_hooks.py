"""MkDocs hooks (mkdocs.yml `hooks:`): the build is offline, and the CLI reference is written
from the parsers at build time (scripts/docs_cli.py)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any, NoReturn

# MkDocs loads a hook by its path: the checkout is put on sys.path so that `scripts` imports.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.docs_cli import MARKER, render


def on_startup(command: str, dirty: bool) -> None:
    """`mkdocs build` reaches no network: nothing the site needs may be fetched at build time
    (a theme's fonts, an inventory of another project's objects). A plugin that tries fails the
    build instead of quietly depending on a host. `mkdocs serve` keeps its sockets."""
    del dirty
    if command == "build":
        socket.socket.connect = _offline  # type: ignore[method-assign]
        socket.getaddrinfo = _offline


def _offline(*args: Any, **kwargs: Any) -> NoReturn:
    raise OSError(f"the docs build is offline: no network ({args[1:2] or args[:1]})")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from novita_flux._cli._main import build_parser

    return markdown.replace(MARKER, render(build_parser()))
