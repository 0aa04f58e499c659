"""`novita-flux gallery DIR`: the page of a directory's images (see novita_flux._gallery)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from novita_flux._cli._common import EXIT_OK, BadInput, Console
from novita_flux._cli._options import add_output_options, directory
from novita_flux._gallery import write_gallery


def add_parser(commands: Any) -> None:
    gallery = commands.add_parser(
        "gallery",
        help="write DIR/index.html: every saved image on one page",
        description="One static page (no network, no script) with every image saved in DIR, "
        "captioned with its prompt, seed, size, steps, cost and task id, and the lines of a "
        "batch that failed or may have been billed. `batch` writes it after every run.",
    )
    gallery.add_argument(
        "directory", type=directory, metavar="DIR", help="a directory of saved images and sidecars"
    )
    add_output_options(gallery)
    gallery.set_defaults(run=cmd_gallery)


def cmd_gallery(args: argparse.Namespace, console: Console) -> int:
    directory: Path = args.directory
    try:
        if not directory.is_dir():
            raise BadInput(f"gallery: {directory} is not a directory")
        page = write_gallery(directory)
    except OSError as error:  # a name too long for the file system, a directory not writable
        raise BadInput(f"gallery: cannot write {directory}: {error.strerror or error}") from None
    console.result({"gallery": str(page)}, str(page))
    return EXIT_OK
