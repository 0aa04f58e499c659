"""The command line's reference page, written from the argparse parsers themselves.

`docs/cli/reference.md` holds a marker; the MkDocs hook (`scripts/mkdocs_hooks.py`) replaces it
with `render()` at build time, so the page says what `novita-flux --help` says and cannot drift:
a new option is documented by the `help=` it is added with. `tests/docs/test_cli_reference.py`
fails when an option has no entry, or an entry says nothing.

    python -m scripts.docs_cli    # print the page's generated part
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

MARKER = "<!-- cli-reference -->"


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command of the parser, by name, in the order `--help` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices.items())
    return {}


def documented(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """The arguments a page documents: all but -h/--help and what argparse hides."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        yield action


def anchor(command: str, action: argparse.Action) -> str:
    """`generate-width`, `batch-file`: one id per entry, stable across builds."""
    name = action.option_strings[-1] if action.option_strings else action.dest
    return f"{command}-{name.lstrip('-')}".replace("_", "-").lower()


def render(parser: argparse.ArgumentParser) -> str:
    """The reference, in Markdown: each command's usage, what it does, and every argument with
    its help (the ranges and defaults in it are read from the spec, as `--help` shows them)."""
    lines = [
        "## `novita-flux`",
        "",
        _text(parser.description),
        "",
        *_usage(parser),
        *_entries("novita-flux", parser),
        _text(parser.epilog),
        "",
    ]
    helps = {
        choice.dest: choice.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }
    for name, command in subcommands(parser).items():
        lines += [f"## `novita-flux {name}`", "", f"*{_text(helps.get(name))}*", ""]
        if command.description:
            lines += [_text(command.description), ""]
        lines += _usage(command)
        lines += _entries(name, command)
        if command.epilog and command.epilog != parser.epilog:
            lines += [_text(command.epilog), ""]
    return "\n".join(lines)


def _usage(parser: argparse.ArgumentParser) -> list[str]:
    return ["```text", parser.format_usage().strip(), "```", ""]


def _entries(command: str, parser: argparse.ArgumentParser) -> list[str]:
    lines: list[str] = []
    for group in parser._action_groups:
        actions = [action for action in group._group_actions if action in set(documented(parser))]
        if not actions:
            continue
        title = group.title or "options"
        lines += [f"**{_text(title)}**", ""]
        for action in actions:
            lines.append(f'- <a id="{anchor(command, action)}"></a>{_signature(action)}  ')
            lines.append(f"  {_help(action)}")
        lines.append("")
    return lines


def _signature(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    takes_value = action.nargs != 0
    metavar = ""
    if takes_value:
        metavar = action.metavar if isinstance(action.metavar, str) else None
        if metavar is None:
            metavar = "{" + ",".join(map(str, action.choices)) + "}" if action.choices else ""
            metavar = metavar or action.dest.upper()
        metavar = f" {metavar}"
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _help(action: argparse.Action) -> str:
    text = _text(action.help)
    if "%(" in text:  # argparse's own placeholders, as --help would expand them
        text = text % {**vars(action), "prog": "novita-flux"}
    return text


def _text(text: str | None) -> str:
    """argparse's plain text as Markdown text: `*`, `_`, `<` and the like said literally."""
    if not text:
        return ""
    text = " ".join(text.split()).replace("&", "&amp;").replace("<", "&lt;")
    return re.sub(r"([\\`*_\[\]])", r"\\\1", text)


def main() -> None:
    from novita_flux._cli._main import build_parser

    print(render(build_parser()))


if __name__ == "__main__":
    main()
