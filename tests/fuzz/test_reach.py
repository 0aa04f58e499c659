"""The fuzz suites reach everything there is: every option of every command, every parameter of
every public call, every field of the spec's request, 200 and error bodies.

What there is is read here from what a user meets (each command's --help, `novita_flux.__all__`
and the signatures, the spec's schemas), and what the suites reach from their own strategies,
drawn a fixed number of times with a fixed seed. A new option, parameter or field that no
strategy draws fails here, with its name.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import novita_flux
from novita_flux import _spec
from novita_flux._cli import main
from novita_flux._schema import compile_schema
from tests.fuzz.cli import actions, argvs, commands, name_of, values
from tests.fuzz.library import NOT_CALLS, arguments, public_calls
from tests.fuzz.test_answers import answers
from tests.fuzz.test_batch_input import LINE_KINDS
from tests.strategies import FIELDS

T = TypeVar("T")
COMMANDS = commands()
DRAWS = 150  # per strategy: enough, with a fixed seed, to reach what there is


def drawn(strategy: st.SearchStrategy[T], n: int = DRAWS) -> list[T]:
    """n values of a strategy, the same ones on every run."""
    found: list[T] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(strategy)
    def collect(value: T) -> None:
        found.append(value)

    collect()
    return found


# --- every option of every command ------------------------------------------------------------

OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def options_in_help(parser: argparse.ArgumentParser) -> set[str]:
    """The option strings a user reads in the command's --help."""
    return set(OPTION.findall(parser.format_usage() + parser.format_help())) - {"-h", "--help"}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_option_a_command_shows_in_its_help_is_drawn(command: str) -> None:
    """Each option the help shows is one the parser walk finds, and the command lines drawn
    around it (it is each line's `focus` in turn, under each of its names) give it, with values
    of more than one kind."""
    parser = COMMANDS[command]
    walked = {string for action in actions(parser) for string in action.option_strings}
    unseen = options_in_help(parser) - walked
    assert not unseen, f"`{command}` options the parser walk misses: {sorted(unseen)}"
    for action in actions(parser):
        for flag in action.option_strings:
            lines = drawn(argvs(command, parser, action, flag), 4)
            words = [word.split("=", 1)[0] for argv in lines for word in argv]
            assert flag in words, f"`{command}` {flag}: never drawn"
        if action.option_strings and action.nargs != 0:
            assert len(set(drawn(values(action), 6))) > 1, name_of(action)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_positional_of_a_command_is_drawn(command: str) -> None:
    parser = COMMANDS[command]
    positionals = [a for a in parser._actions if not a.option_strings]
    for action in positionals:
        assert drawn(values(action), 50), name_of(action)
    lines = drawn(argvs(command, parser), 100)
    if positionals:  # a line with its positionals, and one without
        assert any(len(argv) > 1 and not argv[1].startswith("-") for argv in lines)


def test_every_request_field_can_be_set_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each field of the spec's request is set by some option of `generate` (its value drawn by
    the fuzz's own strategy for that option), as the dry run's body shows."""
    monkeypatch.delenv("NOVITA_API_KEY", raising=False)
    parser = COMMANDS["generate"]
    reached: set[str] = set()
    for action in parser._actions:
        if action.nargs == 0 or isinstance(action, argparse._HelpAction):
            continue
        for text in drawn(values(action), 30):
            flag = action.option_strings[:1]
            argv = ["generate", *(["x"] if flag else []), *flag, text, "--dry-run", "--json"]
            if main(argv) != 0:
                capsys.readouterr()
                continue
            body = json.loads(capsys.readouterr().out)["request"]
            reached |= {field for field, value in body.items() if str(value) == text}
    assert reached == set(FIELDS), f"fields no option reached: {sorted(set(FIELDS) - reached)}"


# --- every parameter of every public call -----------------------------------------------------


def test_every_public_name_is_fuzzed_or_said_not_to_be_a_call() -> None:
    calls = {call.owner.__name__ if call.owner else call.name for call in public_calls()}
    errors = {
        name
        for name in novita_flux.__all__
        if isinstance(getattr(novita_flux, name), type)
        and issubclass(getattr(novita_flux, name), BaseException)
    }
    unreached = set(novita_flux.__all__) - calls - errors - set(NOT_CALLS)
    assert not unreached, f"public names the fuzz does not call: {sorted(unreached)}"
    for name in NOT_CALLS:
        assert name in novita_flux.__all__, f"NOT_CALLS names {name}, which is not public"


@pytest.mark.parametrize("call", public_calls(), ids=lambda call: call.label)
def test_every_parameter_of_a_public_call_is_given_any_value(call: Any) -> None:
    """Each parameter of the signature is drawn as any value (it is each draw's `focus` in
    turn), and such values are of more than one kind."""
    for name in set(inspect.signature(call.function).parameters) - {"self"}:
        given = drawn(arguments(call, {}, name), 12)
        assert all(name in arguments.odd for arguments in given), (call.label, name)
        kinds = {type(arguments.kwargs.get(name)) for arguments in given}
        assert len(kinds) >= 2, f"{call.label}({name}): only {kinds} drawn"


def test_every_request_field_is_a_parameter_of_generate() -> None:
    """So the library fuzz, which gives every parameter any value, reaches every field."""
    for call in public_calls():
        if call.name == "generate":
            assert set(FIELDS) <= set(call.parameters()), call.label


# --- every field of the spec's bodies ---------------------------------------------------------


def paths(schema: dict[str, Any], at: str = "") -> Iterator[str]:
    """Every property of a compiled schema, as a dotted path (`images[].image_url`)."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{at}{name}"
        yield from paths(sub, f"{at}{name}.")
    if "items" in schema:
        yield from paths(schema["items"], f"{at.rstrip('.')}[].")
    for branch in schema.get("oneOf", schema.get("anyOf", [])):
        yield from paths(branch, at)


def found_paths(value: Any, at: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for name, sub in value.items():
            yield f"{at}{name}"
            yield from found_paths(sub, f"{at}{name}.")
    elif isinstance(value, list):
        for item in value:
            yield from found_paths(item, f"{at.rstrip('.')}[].")


def _json_of(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def test_every_field_of_a_200_and_of_an_error_body_is_drawn() -> None:
    bodies = [_json_of(answer.content) for answer in drawn(answers(), 200)]
    reached = {path for body in bodies for path in found_paths(body)}
    for status in (200,):
        expected = set(paths(compile_schema(_spec.response_schema(_spec.GENERATE, status))))
        assert expected <= reached, f"{status} fields never drawn: {sorted(expected - reached)}"
    expected = set(paths(compile_schema(_spec.error_schema())))
    assert expected <= reached, f"error fields never drawn: {sorted(expected - reached)}"


def test_every_request_field_appears_in_a_drawn_batch_line() -> None:
    lines = drawn(st.sampled_from(sorted(LINE_KINDS)).flatmap(lambda kind: LINE_KINDS[kind]))
    reached = {path for line in lines for path in found_paths(_json_of(line))}
    assert set(FIELDS) <= reached, f"fields no batch line holds: {sorted(set(FIELDS) - reached)}"
