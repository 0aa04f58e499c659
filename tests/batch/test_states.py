"""The batch's one transition table (_states) and the ledger's SQL agree: every step moves a
request from exactly the states the table takes it from, to the state the table names, and is
refused from every other state; the database accepts exactly the table's states."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from novita_flux import GeneratedImage
from novita_flux._ledger import Ledger
from novita_flux._recovery import _STATES as MANIFEST_STATUSES
from novita_flux._row import COLUMNS, RECORD_COLUMNS
from novita_flux._states import (
    TRANSITIONS,
    IllegalStep,
    State,
    Step,
    after,
    sources,
    target,
    to_send,
)

KEY = "1" * 32
ERROR = {"type": "E", "message": "m"}
IMAGES = [GeneratedImage("https://host/0.png", 3600, "png", None, 0, {})]

# Each step as the ledger takes it. `send again` is `sending(again=True)`, which also takes
# every state that `send` leaves from.
TAKE: dict[Step, Callable[[Ledger], object]] = {
    Step.SEND: lambda ledger: ledger.sending(KEY),
    Step.SEND_AGAIN: lambda ledger: ledger.sending(KEY, again=True),
    Step.ANSWERED: lambda ledger: ledger.paid(KEY, "t", IMAGES),
    Step.REFUSED: lambda ledger: ledger.failed(KEY, ERROR),
    Step.UNANSWERED: lambda ledger: ledger.unknown(KEY, ERROR),
    Step.INTERRUPTED: lambda ledger: ledger.settle_interrupted(),
    Step.SAVED: lambda ledger: ledger.saved(KEY, ["a_0.png"]),
    Step.SAVED_IN_PART: lambda ledger: ledger.partly_saved(KEY, [], ERROR),
    Step.FILES_LOST: lambda ledger: ledger.lost_files(KEY, []),
}
# The steps a refusal is said by a return value (False, or no row moved) rather than raised.
ANSWERS_REFUSAL: dict[Step, object] = {
    Step.SEND: False,
    Step.SEND_AGAIN: False,
    Step.INTERRUPTED: 0,
}


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path, [].append)
    opened._db.execute("PRAGMA synchronous = OFF")
    yield opened
    with contextlib.suppress(sqlite3.ProgrammingError):
        opened.close()


def held_in(ledger: Ledger, state: State, key: str = KEY) -> None:
    """One request, recorded in `state`, as recovery would bring it in."""
    body = {"prompt": "a", "seed": 1, "image_num": 1, "width": 64, "height": 64}
    ledger.restore(
        [{"key": key, "request": {"prompt": "a"}, "body": body, "cost": Decimal("0.00075"),
          "state": state, "sends": 1}]
    )  # fmt: skip


def state_of(ledger: Ledger, key: str = KEY) -> str:
    (found,) = ledger._db.execute("SELECT state FROM requests WHERE key = ?", (key,)).fetchone()
    return str(found)


def test_every_step_has_its_way_into_the_ledger() -> None:
    assert set(TAKE) == set(Step)
    assert set(TRANSITIONS) == set(State)


@pytest.mark.parametrize("step", list(Step))
@pytest.mark.parametrize("state", list(State))
def test_the_ledger_takes_a_step_from_exactly_the_states_the_table_allows(
    ledger: Ledger, state: State, step: Step
) -> None:
    held_in(ledger, state)
    allowed = sources(Step.SEND, Step.SEND_AGAIN) if step is Step.SEND_AGAIN else sources(step)
    if state in allowed:
        TAKE[step](ledger)
        assert state_of(ledger) == target(step)
        if step is not Step.SEND_AGAIN or state in sources(Step.SEND_AGAIN):
            assert after(state, step) == target(step)
        return
    if step in ANSWERS_REFUSAL:
        assert TAKE[step](ledger) == ANSWERS_REFUSAL[step]
    else:
        with pytest.raises(IllegalStep, match=f"is {state}"):
            TAKE[step](ledger)
    assert state_of(ledger) == state  # refused: nothing written
    with pytest.raises(IllegalStep):
        after(state, step)


def test_a_step_for_a_request_the_ledger_does_not_hold_is_refused(ledger: Ledger) -> None:
    with pytest.raises(IllegalStep) as refused:
        ledger.saved(KEY, [])
    assert str(refused.value) == (
        f"request {KEY} is not in the ledger: the step 'saved' leaves only from paid"
    )


def test_a_move_the_table_lacks_is_refused_naming_the_state_and_the_step() -> None:
    """The message is what a user reads when the runner has a bug: it names both by value."""
    with pytest.raises(IllegalStep, match=r"^a request that is saved cannot take the step 'send'$"):
        after(State.SAVED, Step.SEND)


def test_the_database_holds_exactly_the_table_states(ledger: Ledger) -> None:
    for number, state in enumerate(State):
        held_in(ledger, state, key=str(number) * 32)
        assert state_of(ledger, str(number) * 32) == state.value
    with pytest.raises(sqlite3.IntegrityError):
        ledger._db.execute("UPDATE requests SET state = 'done' WHERE key = ?", (KEY,))


def test_each_step_leads_to_one_state_and_the_values_are_the_stored_strings() -> None:
    for step in Step:
        assert {moves[step] for moves in TRANSITIONS.values() if step in moves} == {target(step)}
    assert [state.value for state in State] == [
        "planned", "sending", "paid", "saved", "failed", "unknown",
    ]  # fmt: skip


def test_a_run_sends_unknown_requests_only_when_asked() -> None:
    assert set(to_send(resend_unknown=False)) == {State.PLANNED, State.FAILED}
    assert set(to_send(resend_unknown=True)) == {State.PLANNED, State.FAILED, State.UNKNOWN}


def test_recovery_reads_a_manifest_in_flight_as_a_request_interrupted_on_the_wire() -> None:
    expected: dict[str, Any] = {state.value: state for state in State}
    expected |= {"sending": State.UNKNOWN, "done": State.SAVED, "generated": State.PAID}
    assert expected == MANIFEST_STATUSES


def test_the_requests_table_has_a_column_for_every_field_of_a_row(ledger: Ledger) -> None:
    """The queries take their column lists from Row's fields (_row): the table must hold them
    all, and only the bookkeeping a Row does not carry besides."""
    columns = {name for _, name, *_ in ledger._db.execute("PRAGMA table_info(requests)")}
    assert columns == set(COLUMNS) | set(RECORD_COLUMNS) | {"image_num", "updated"}
