"""The command reference (docs/cli/reference.md) is written from the parsers at build time: every
command and option has an entry that says something, and the page asks for it."""

from __future__ import annotations

import argparse
import re

import pytest

from novita_flux._cli._main import build_parser
from scripts.docs_cli import MARKER, anchor, render, subcommands
from tests.docs.runner import ROOT


def every_argument(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """Each command's arguments, walked here without the generator's help: every action argparse
    holds, but -h and the subcommand list."""
    found = [("novita-flux", action) for action in parser._actions if _counts(action)]
    for name, command in subcommands(parser).items():
        found += [(name, action) for action in command._actions if _counts(action)]
    return found


def _counts(action: argparse.Action) -> bool:
    return not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)


def entries(page: str) -> dict[str, str]:
    """What the page says under each entry's anchor: `anchor -> text`."""
    found = re.findall(r'^- <a id="([^"]+)"></a>.*\n  (.*)$', page, re.MULTILINE)
    return dict(found)


def check_reference(parser: argparse.ArgumentParser) -> None:
    page = entries(render(parser))
    arguments = every_argument(parser)
    assert len(arguments) > 60  # the walk found the commands' options, not nothing
    for command, action in arguments:
        where = f"novita-flux {command} {'/'.join(action.option_strings) or action.dest}"
        assert action.help not in (None, "", argparse.SUPPRESS), f"{where}: no help= to document"
        assert anchor(command, action) in page, f"{where}: no entry in the command reference"
        assert page[anchor(command, action)].strip(), f"{where}: an entry that says nothing"


def test_every_option_of_every_command_has_an_entry_that_says_something() -> None:
    check_reference(build_parser())


def test_every_command_has_its_section_with_its_usage() -> None:
    parser = build_parser()
    page = render(parser)
    for name, command in subcommands(parser).items():
        assert f"## `novita-flux {name}`" in page
        assert command.format_usage().strip() in page


def test_anchors_are_unique_so_every_link_to_an_option_is_one_place() -> None:
    parser = build_parser()
    anchors = [anchor(command, action) for command, action in every_argument(parser)]
    assert len(anchors) == len(set(anchors))


def test_the_reference_page_asks_for_the_generated_reference() -> None:
    page = (ROOT / "docs" / "cli" / "reference.md").read_text(encoding="utf-8")
    assert MARKER in page


def test_an_option_added_without_help_is_caught() -> None:
    # The check above, against a parser that gained an option nobody documented.
    parser = build_parser()
    subcommands(parser)["price"].add_argument("--undocumented")
    with pytest.raises(AssertionError, match="price --undocumented: no help="):
        check_reference(parser)
