"""No step on a money path goes untested: every `reach(...)` in the package names a step of
novita_flux._faultpoints, every named step is reached by a clean run, and every step a command
reaches is struck by the fault matrices (process faults in test_process_faults, a full disk in
test_full_disk). A new step added to the code without its fault tests fails here."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

from novita_flux import _faultpoints
from novita_flux._faultpoints import POINTS, STEPS, WRITES
from tests.faults import test_full_disk, test_process_faults

pytestmark = pytest.mark.slow

PACKAGE = Path(_faultpoints.__file__).parent


def _reached_in_code() -> Counter[str]:
    """Every literal name passed to `reach` in the package; a name that is not a literal is a
    step nobody can strike on purpose, so it counts as '<not a literal>'."""
    found: Counter[str] = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "reach"
            ):
                (argument,) = node.args
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found[argument.value] += 1
                else:
                    found["<not a literal>"] += 1
    return found


def test_every_step_the_code_reaches_is_named_and_every_named_step_is_in_the_code() -> None:
    assert set(_reached_in_code()) == set(POINTS)
    assert set(STEPS).isdisjoint(WRITES)


def test_every_named_step_is_reached_by_a_clean_batch_or_generate(
    batch_census: Counter[str], generate_census: Counter[str]
) -> None:
    reached = {point for point, count in (batch_census + generate_census).items() if count}
    assert reached == set(POINTS)


def test_the_process_fault_matrix_strikes_every_step_each_command_reaches(
    batch_census: Counter[str], generate_census: Counter[str]
) -> None:
    assert set(test_process_faults.BATCH_POINTS) == {p for p in POINTS if batch_census[p]}
    assert set(test_process_faults.GENERATE_POINTS) == {p for p in POINTS if generate_census[p]}


def test_the_full_disk_matrix_strikes_every_write_each_command_makes(
    batch_census: Counter[str], generate_census: Counter[str]
) -> None:
    assert set(test_full_disk.BATCH_WRITES) == {w for w in WRITES if batch_census[w]}
    assert set(test_full_disk.GENERATE_WRITES) == {w for w in WRITES if generate_census[w]}
