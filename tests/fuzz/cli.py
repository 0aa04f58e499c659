"""Command lines drawn from the CLI's own argparse parsers.

Every subcommand, and every option of it, is found by walking `build_parser()`: its option
strings, whether it takes a value (nargs), what that value is read as (type), the values it
allows (choices) and the words its help names. So an option added tomorrow is drawn tomorrow,
and `test_reach.py` fails if one is not.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from hypothesis import strategies as st

from novita_flux._cli._main import build_parser
from tests.fuzz.values import number_text, terminal_text

# Files and directories a fuzzed command line may name, made in its working directory by the
# test (see test_cli_argv.Workspace): a path option draws these as well as any text, mostly
# those its metavar asks for (FILE.jsonl, DIR).
PLACES = ("requests.jsonl", "invalid.jsonl", "out", "a-file", "missing/deeper", ".", "")
DIRECTORIES = ("out", "missing/deeper", ".")


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser, by name."""
    root = build_parser()
    (subparsers,) = (a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """A parser's options and positionals, --help aside (drawn on its own, rarely)."""
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            yield action


def name_of(action: argparse.Action) -> str:
    """How a person names an option: its longest option string, or a positional's dest."""
    return max(action.option_strings, key=len) if action.option_strings else action.dest


def takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _converter(action: argparse.Action) -> str:
    kind = action.type
    return getattr(kind, "__name__", "") if kind is not None else "str"


# The parsers of numbers in novita_flux._cli._options (an argparse type built by `checked` takes
# its parser's name); test_reach fails when an option reading a number is missed.
NUMBER_READERS = frozenset({"int", "float", "integer", "number", "duration", "budget"})


def reads_a_number(action: argparse.Action) -> bool:
    """Whether its type reads a number (int, float, an amount of money)."""
    return _converter(action) in NUMBER_READERS


def reads_a_path(action: argparse.Action) -> bool:
    return action.type is Path


def help_words(action: argparse.Action) -> list[str]:
    """Lower-case words of the option's help: where a value that is not declared as `choices`
    (verify --only's groups) is listed for people."""
    return sorted(set(re.findall(r"\b[a-z][a-z_]{2,}\b", action.help or "")))


def _safe_path(text: str) -> str:
    """Any text as a path inside the working directory: the fuzz runs as whoever runs the tests
    (root, maybe), so it must never name a place outside it."""
    return text.lstrip("/").replace("..", "_")


def _asked_for(action: argparse.Action) -> tuple[str, ...]:
    """The places a path option's metavar names: files with its suffix, or directories."""
    metavar = str(action.metavar or "")
    if metavar == "DIR":
        return DIRECTORIES
    suffix = metavar.rpartition(".")[2]
    return tuple(place for place in PLACES if suffix and place.endswith("." + suffix)) or PLACES


def values(action: argparse.Action) -> st.SearchStrategy[str]:
    """Values for an option, drawn from what the parser says it reads: its choices, its default
    (so that lines get past the parser and do their work too), numbers as text for a number,
    the words its help lists, and any text."""
    options: list[st.SearchStrategy[str]] = []
    if action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool):
        options.append(st.just(str(action.default)))
    if action.choices:
        options.append(st.sampled_from(sorted(map(str, action.choices))))
    if reads_a_number(action):
        options.append(number_text())
    if reads_a_path(action):  # mostly a place that is there, so that commands get to work
        return st.one_of(
            st.sampled_from(_asked_for(action)),
            st.sampled_from(_asked_for(action)),
            st.sampled_from(PLACES),
            terminal_text(20).map(_safe_path),
        )
    words = help_words(action)
    if words and not action.choices:
        options.append(st.lists(st.sampled_from(words), min_size=1, max_size=3).map(",".join))
    options.append(terminal_text())
    return st.one_of(options)


@st.composite
def argvs(
    draw: st.DrawFn,
    command: str,
    parser: argparse.ArgumentParser,
    focus: argparse.Action | None = None,
    flag: str | None = None,
) -> list[str]:
    """A command line for `command`: one option always there (`focus`, or each in turn, under
    `flag` or any of its names), the others in about a sixth of the lines, each value drawn from
    what the option reads, positionals usually given, words sometimes shuffled, repeated or
    unknown."""
    groups: list[list[str]] = []
    if focus is None:
        focus = draw(st.sampled_from([a for a in actions(parser) if a.option_strings] or [None]))
    for action in actions(parser):
        positional = not action.option_strings
        if positional or action.required:
            if draw(st.integers(0, 9)) == 9:  # something required left out
                continue
        elif action is not focus and draw(st.integers(0, 5)) != 5:
            continue
        if positional:
            groups.append([draw(values(action))])
            continue
        given = flag if action is focus and flag else draw(st.sampled_from(action.option_strings))
        if not takes_value(action):
            groups.append([given])
            continue
        value = draw(values(action))
        joined = given.startswith("--") and draw(st.integers(0, 4)) == 4
        groups.append([f"{given}={value}"] if joined else [given, value])
    if draw(st.integers(0, 9)) == 9:
        groups.append(draw(st.sampled_from([["--no-such-option"], ["--help"], ["surplus"], ["-"]])))
    if groups and draw(st.booleans()):
        groups = draw(st.permutations(groups))
    if groups and draw(st.integers(0, 9)) == 9:
        groups.append(draw(st.sampled_from(groups)))  # an option given twice
    return [command, *(word for group in groups for word in group)]
