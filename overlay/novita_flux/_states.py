"""The batch's states and the one table of the steps between them.

Everything that moves a request or asks where it stands reads this table: the ledger's SQL (each
step's `UPDATE ... WHERE state IN` names the states the step leaves from), the runner (which
states are sent, which only downloaded), recovery (what a manifest's status becomes) and the
totals. Kept in one table, as h11 keeps its connection states (h11/_state.py), so that a step the
table does not allow is a bug that the ledger refuses, not a row quietly moved.

A request moves `planned -> sending -> paid -> saved`:
- planned: checked, priced, its seed drawn and written; not sent yet.
- sending: on the wire. Found at start-up, it means the process died with the request in flight:
  it becomes `unknown`.
- paid: the API answered and the answer's links are recorded; images not all saved yet.
- saved: every image saved.
- failed: refused before any work (a 4xx, a rate limit that outlasted the retries, no
  connection): sent again by the next run.
- unknown: may have been billed, outcome unknown: never sent again unless the user asks
  (`--resend-unknown`).

The values are the strings the ledger has always stored, so older ledgers and the sqlite3
queries in the docs keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final


class State(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"
    PAID = "paid"
    SAVED = "saved"
    FAILED = "failed"
    UNKNOWN = "unknown"


# Not a state: what the counts and the manifest call a line that is not a valid request.
INVALID: Final = "invalid"


class Step(StrEnum):
    """What moves a request from one state to the next."""

    SEND = "send"  # the intent to send, on disk before the request leaves
    SEND_AGAIN = "send again"  # a paid request whose links expired (--regenerate-expired)
    ANSWERED = "answered"  # a 200: its links are recorded
    REFUSED = "refused"  # an answer known to have cost nothing
    UNANSWERED = "unanswered"  # no answer that says whether it was billed
    INTERRUPTED = "interrupted"  # found on the wire at start-up: its process died
    SAVED = "saved"  # every image on disk
    SAVED_IN_PART = "saved in part"  # some images on disk; the rest are downloaded next
    FILES_LOST = "files lost"  # a saved image is gone or damaged: downloaded again


TRANSITIONS: Final[Mapping[State, Mapping[Step, State]]] = {
    State.PLANNED: {Step.SEND: State.SENDING},
    State.SENDING: {
        Step.ANSWERED: State.PAID,
        Step.REFUSED: State.FAILED,
        Step.UNANSWERED: State.UNKNOWN,
        Step.INTERRUPTED: State.UNKNOWN,
    },
    State.PAID: {
        Step.SEND_AGAIN: State.SENDING,
        Step.SAVED: State.SAVED,
        Step.SAVED_IN_PART: State.PAID,
    },
    State.SAVED: {Step.FILES_LOST: State.PAID},
    State.FAILED: {Step.SEND: State.SENDING},
    State.UNKNOWN: {Step.SEND: State.SENDING},
}

# How far along a request is within one send: when records disagree, the furthest one wins.
RANK: Final[Mapping[State, int]] = {
    State.PLANNED: 0,
    State.SENDING: 1,
    State.FAILED: 2,
    State.UNKNOWN: 3,
    State.PAID: 4,
    State.SAVED: 5,
}


class IllegalStep(RuntimeError):
    """A step asked of a request in a state the table does not take it from: a bug in the
    caller, never something a user or the API can cause."""


def sources(*steps: Step) -> tuple[State, ...]:
    """The states any of these steps leaves from, in the table's order."""
    return tuple(state for state, moves in TRANSITIONS.items() if any(s in moves for s in steps))


def target(step: Step) -> State:
    """The state a step leads to (the same from every state it leaves)."""
    (reached,) = {moves[step] for moves in TRANSITIONS.values() if step in moves}
    return reached


def after(state: State, step: Step) -> State:
    """The state `step` takes `state` to; IllegalStep if the table has no such move."""
    try:
        return TRANSITIONS[state][step]
    except KeyError:
        raise IllegalStep(f"a request that is {state} cannot take the step '{step}'") from None


def to_send(*, resend_unknown: bool) -> tuple[State, ...]:
    """The states a run sends: all that the step `send` leaves from, but `unknown` (possibly
    billed) only when the user asks."""
    return tuple(s for s in sources(Step.SEND) if resend_unknown or s is not State.UNKNOWN)


# What is still to pay for (sent: counted in images and cost) and what is only downloaded.
TO_PAY: Final = sources(Step.SEND)
TO_DOWNLOAD: Final = sources(Step.SAVED)
