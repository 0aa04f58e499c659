"""Explicit examples for the batch ledger (_ledger): every state change driven directly on a
ledger in a temporary directory, and the exact rows, totals, counts and manifest lines read back.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from novita_flux import GeneratedImage, Generation, ValidationError, _faultpoints, _ledger
from novita_flux._errors import APIConnectionError, InternalServerError
from novita_flux._journal import JOURNAL_NAME
from novita_flux._ledger import (
    LEDGER_NAME,
    MANIFEST_NAME,
    STATES,
    Ledger,
    PlannedLine,
    Row,
    _stamp,
    describe_error,
    progress,
)
from novita_flux._models import entry_of, image_of
from novita_flux._states import State
from tests.support import failing_at, hooked

K1, K2, K3, K4 = ("1" * 32, "2" * 32, "3" * 32, "4" * 32)
NOW = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
STAMP = r"\d{8}T\d{6}\.\d{6}Z"


def body(prompt: str, seed: int = 11, image_num: int = 1) -> dict[str, Any]:
    return {"prompt": prompt, "seed": seed, "image_num": image_num, "width": 64, "height": 64}


def planned(line: int, key: str, prompt: str, seed: int = 11, image_num: int = 1) -> PlannedLine:
    cost = Decimal("0.00075") * image_num
    return PlannedLine(line, key, {"prompt": prompt}, body(prompt, seed, image_num), cost)


def planned_and_closed(directory: Path, *lines: PlannedLine) -> None:
    """A ledger left behind by an earlier run that planned `lines`."""
    earlier = Ledger.open(directory, [].append)
    earlier.plan(list(lines))
    earlier.close()


@pytest.fixture
def reports() -> list[str]:
    return []


@pytest.fixture
def ledger(tmp_path: Path, reports: list[str]) -> Iterator[Ledger]:
    opened = Ledger.open(tmp_path, reports.append)
    # Durability is pinned by test_a_new_ledger_is_a_wal_database_with_the_schema_version; the
    # other tests need no fsync per transaction.
    opened._db.execute("PRAGMA synchronous = OFF")
    yield opened
    with contextlib.suppress(sqlite3.ProgrammingError):
        opened.close()


def raw(ledger: Ledger, key: str) -> dict[str, Any]:
    """The row as any sqlite3 tool reads it."""
    cursor = ledger._db.execute("SELECT * FROM requests WHERE key = ?", (key,))
    names = [column[0] for column in cursor.description]
    found = cursor.fetchone()
    assert found is not None, key
    return dict(zip(names, found, strict=True))


def lines(ledger: Ledger) -> list[tuple[Any, ...]]:
    return ledger._db.execute(
        "SELECT line, key, request, error FROM lines ORDER BY line"
    ).fetchall()


def images(count: int, expires: datetime | None = None) -> list[GeneratedImage]:
    return [
        GeneratedImage(f"https://host/{i}.png", 3600, "png", expires, i, {"nsfw": False})
        for i in range(count)
    ]


def only(ledger: Ledger, key: str) -> Row:
    (row,) = [row for row in ledger.rows(STATES) if row.key == key]
    return row


# --- opening ------------------------------------------------------------------------------------


def test_a_new_ledger_is_a_wal_database_with_the_schema_version(tmp_path: Path) -> None:
    reports: list[str] = []
    ledger = Ledger.open(tmp_path, reports.append)
    assert ledger.path == tmp_path / LEDGER_NAME
    assert ledger.path.exists()
    assert ledger._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert ledger._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert ledger._db.isolation_level is None
    assert ledger._db.execute("SELECT name, value FROM meta").fetchall() == [("schema", "1")]
    assert reports == []
    ledger.close()


def test_the_ledger_can_be_used_from_another_thread(ledger: Ledger) -> None:
    failures: list[BaseException] = []

    def plan() -> None:
        try:
            ledger.plan([planned(1, K1, "a")])
        except BaseException as error:
            failures.append(error)

    worker = threading.Thread(target=plan)
    worker.start()
    worker.join()
    assert failures == []
    assert ledger.seed_of(K1) == 11


def test_a_closed_ledger_refuses_further_use(ledger: Ledger) -> None:
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        ledger.seed_of(K1)


def test_a_step_whose_transaction_cannot_begin_writes_nothing_and_lets_the_ledger_go(
    tmp_path: Path, ledger: Ledger
) -> None:
    """BEGIN itself fails (here: a closed connection; a disk error does the same): nothing was
    recorded, so nothing goes to the journal, and the ledger's lock is released, or the next
    call from any thread would wait for ever."""
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)
    journal = (tmp_path / JOURNAL_NAME).read_bytes()
    ledger._db.close()
    for _ in range(2):
        with pytest.raises(sqlite3.ProgrammingError):
            ledger.paid(K1, "task-1", images(1))
        leaked = ledger._lock.locked()
        if leaked:  # let the fixture's close() go on: a hang would hide the failure
            ledger._lock.release()
        assert not leaked
    assert (tmp_path / JOURNAL_NAME).read_bytes() == journal


# --- planning -----------------------------------------------------------------------------------


def test_plan_records_each_request_and_line_exactly(ledger: Ledger) -> None:
    ledger.begin_planning()
    ledger.plan(
        [
            planned(1, K1, "a", seed=5, image_num=2),
            PlannedLine(2, None, "not json object", error="line 2: not an object"),
            planned(3, K2, "b"),
        ]
    )
    assert list(ledger.rows([State.PLANNED])) == [
        Row(1, K1, {"prompt": "a"}, body("a", 5, 2), 5, Decimal("0.00150"), State.PLANNED, None,
            [], [], None),
        Row(3, K2, {"prompt": "b"}, body("b"), 11, Decimal("0.00075"), State.PLANNED, None,
            [], [], None),
    ]  # fmt: skip
    first = raw(ledger, K1)
    assert first["request"] == '{"prompt":"a"}'
    assert first["body"] == '{"prompt":"a","seed":5,"image_num":2,"width":64,"height":64}'
    assert (first["seed"], first["image_num"], first["cost"]) == (5, 2, "0.00150")
    assert (first["state"], first["task_id"], first["error"]) == (State.PLANNED, None, None)
    assert (first["images"], first["files"], first["sends"]) == ("[]", "[]", 0)
    assert NOW.match(first["updated"])
    assert lines(ledger) == [
        (1, K1, '{"prompt":"a"}', None),
        (2, None, '"not json object"', "line 2: not an object"),
        (3, K2, '{"prompt":"b"}', None),
    ]
    assert ledger.counts() == Counter({State.PLANNED: 2, "invalid": 1})


def test_plan_keeps_unicode_unescaped_in_the_stored_json(ledger: Ledger) -> None:
    ledger.plan([PlannedLine(1, K1, {"prompt": "é"}, body("é"), Decimal(0))])
    assert raw(ledger, K1)["request"] == '{"prompt":"é"}'


def test_plan_keeps_a_lone_surrogate_as_its_escape_in_the_stored_json(ledger: Ledger) -> None:
    """UTF-8 cannot hold `\\ud800` (an input line's escape): that JSON is written ASCII-escaped,
    compact like the rest."""
    ledger.plan([PlannedLine(1, K1, {"prompt": "\ud800"}, body("\ud800"), Decimal(1))])
    stored = raw(ledger, K1)
    assert stored["request"] == '{"prompt":"\\ud800"}'
    assert json.loads(stored["body"]) == body("\ud800")


def test_a_line_with_a_key_but_no_body_records_only_the_line(ledger: Ledger) -> None:
    ledger.plan([PlannedLine(4, K1, {"prompt": "a"}, None, error="refused")])
    assert ledger._db.execute("SELECT COUNT(*) FROM requests").fetchone() == (0,)
    assert lines(ledger) == [(4, K1, '{"prompt":"a"}', "refused")]
    assert ledger.counts() == Counter({"invalid": 1})


def test_a_line_error_naming_a_lone_surrogate_is_kept_as_its_escape(ledger: Ledger) -> None:
    """An input line's `\\ud800` escape in a field name reaches the error text: UTF-8 cannot
    hold it, so the TEXT column keeps it as the backslash escape the input wrote."""
    ledger.plan([PlannedLine(4, None, None, error="unknown field '\ud800'")])
    assert lines(ledger) == [(4, None, "null", "unknown field '\\ud800'")]


def test_replanning_a_known_request_keeps_its_row_and_moves_its_line(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a", seed=5), planned(2, K2, "b")])
    assert ledger.sending(K1)
    ledger.begin_planning()
    assert lines(ledger) == []
    ledger.plan([planned(7, K1, "a", seed=99)])
    row = only(ledger, K1)
    assert (row.line, row.seed, row.state) == (7, 5, State.SENDING)
    assert raw(ledger, K1)["sends"] == 1
    assert ledger.seed_of(K1) == 5
    assert ledger.seed_of(K2) == 11  # still known, though not in this run
    assert ledger.seed_of(K3) is None
    assert [row.key for row in ledger.rows(STATES)] == [K1]  # only this run's lines
    assert ledger.counts() == Counter({State.SENDING: 1})


# --- the transitions ----------------------------------------------------------------------------


def test_planned_to_sending_to_paid_to_saved(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a", seed=3, image_num=2)])
    assert ledger.sending(K1) is True
    sent = raw(ledger, K1)
    assert (sent["state"], sent["sends"], sent["error"]) == (State.SENDING, 1, None)
    assert ledger.sending(K1) is False  # on the wire: never sent twice
    assert ledger.sending(K1, again=True) is False

    paid = images(2, datetime(2030, 1, 1, tzinfo=UTC))
    ledger.paid(K1, "task-1", paid)
    row = only(ledger, K1)
    assert (row.state, row.task_id, row.files, row.error) == (State.PAID, "task-1", [], None)
    assert row.images == [
        {"url": "https://host/0.png", "ttl": 3600, "type": "png",
         "expires_at": "2030-01-01T00:00:00+00:00", "index": 0, "extra": {"nsfw": False}},
        {"url": "https://host/1.png", "ttl": 3600, "type": "png",
         "expires_at": "2030-01-01T00:00:00+00:00", "index": 1, "extra": {"nsfw": False}},
    ]  # fmt: skip
    assert row.generation() == Generation("task-1", paid, 3, body("a", 3, 2), Decimal("0.00150"))
    assert ledger.sending(K1) is False  # paid: only sent again on request

    ledger.partly_saved(K1, ["a_0.png"], {"type": "OSError", "message": "disk full"})
    row = only(ledger, K1)
    assert (row.state, row.files) == (State.PAID, ["a_0.png"])
    assert row.error == {"type": "OSError", "message": "disk full"}
    assert row.missing_images() == [paid[1]]
    assert row.unsaved().images == [paid[1]]
    assert row.unsaved().task_id == "task-1"

    ledger.saved(K1, ["a_0.png", "a_1.png"])
    row = only(ledger, K1)
    assert (row.state, row.files, row.error, row.task_id) == (
        State.SAVED, ["a_0.png", "a_1.png"], None, "task-1",
    )  # fmt: skip
    assert row.missing_images() == []
    assert ledger.sending(K1) is False
    assert ledger.sending(K1, again=True) is False  # saved is final
    assert raw(ledger, K1)["sends"] == 1


def test_a_paid_request_is_sent_again_only_when_asked_and_starts_clean(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a", image_num=2)])
    ledger.sending(K1)
    ledger.paid(K1, "task-1", images(2), {"type": "X", "message": "one link missing"})
    ledger.partly_saved(K1, ["a_0.png"], {"type": "E", "message": "m"})
    assert ledger.sending(K1) is False
    assert ledger.sending(K1, again=True) is True
    again = raw(ledger, K1)
    assert (again["state"], again["sends"]) == (State.SENDING, 2)
    assert (again["images"], again["files"], again["error"]) == ("[]", "[]", None)


def test_a_paid_answer_may_carry_an_error(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)
    ledger.paid(K1, None, images(1), {"type": "ResponseValidationError", "message": "no link"})
    row = only(ledger, K1)
    assert (row.state, row.task_id, len(row.images)) == (State.PAID, None, 1)
    assert row.error == {"type": "ResponseValidationError", "message": "no link"}
    assert row.generation().task_id == ""


def test_failed_and_unknown_requests_are_sendable_again(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a"), planned(2, K2, "b")])
    ledger.sending(K1)
    ledger.failed(K1, {"type": "BadRequestError", "message": "400"})
    ledger.sending(K2)
    ledger.unknown(K2, {"type": "APITimeoutError", "message": "timeout"})
    assert [
        (row.key, row.state, row.error) for row in ledger.rows([State.FAILED, State.UNKNOWN])
    ] == [
        (K1, State.FAILED, {"type": "BadRequestError", "message": "400"}),
        (K2, State.UNKNOWN, {"type": "APITimeoutError", "message": "timeout"}),
    ]
    assert raw(ledger, K1)["error"] == '{"type":"BadRequestError","message":"400"}'
    assert ledger.sending(K1) is True
    assert ledger.sending(K2) is True
    assert (raw(ledger, K1)["sends"], raw(ledger, K2)["sends"]) == (2, 2)
    assert raw(ledger, K1)["error"] is None


def test_a_saved_request_whose_files_were_lost_is_paid_again_keeping_what_is_left(
    ledger: Ledger,
) -> None:
    """The step `files lost`: the request is downloaded again, not sent again, and its row
    says why, so that the manifest shows it."""
    ledger.plan([planned(1, K1, "a", image_num=2)])
    ledger.sending(K1)
    paid = images(2)
    ledger.paid(K1, "task-1", paid)
    ledger.saved(K1, ["a_0.png", "a_1.png"])
    ledger.lost_files(K1, ["a_1.png"])
    row = only(ledger, K1)
    assert (row.state, row.files, row.task_id) == (State.PAID, ["a_1.png"], "task-1")
    assert row.error == {"type": "FileLost", "message": "a saved image was missing or damaged"}
    assert row.missing_images() == [paid[0]]
    assert raw(ledger, K1)["sends"] == 1


def test_sending_an_unknown_key_is_refused(ledger: Ledger) -> None:
    assert ledger.sending(K4) is False
    assert ledger.sending(K4, again=True) is False


def test_settle_interrupted_turns_requests_in_flight_into_unknown(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a"), planned(2, K2, "b"), planned(3, K3, "c")])
    ledger.sending(K1)
    ledger.sending(K3)
    assert ledger.settle_interrupted() == 2
    assert [(row.key, row.state) for row in ledger.rows(STATES)] == [
        (K1, State.UNKNOWN), (K2, State.PLANNED), (K3, State.UNKNOWN),
    ]  # fmt: skip
    assert only(ledger, K1).error == {
        "type": "Interrupted",
        "message": "the process stopped while this request was in flight; it may have been billed",
    }
    assert ledger.settle_interrupted() == 0


# --- resuming: which rows come back, in what order ----------------------------------------------


def all_states(ledger: Ledger) -> None:
    """Six lines, one request in each state."""
    keys = [K1, K2, K3, K4, "5" * 32, "6" * 32]
    ledger.plan([planned(n, key, f"p{n}", image_num=2) for n, key in enumerate(keys, 1)])
    for key in keys[1:]:
        ledger.sending(key)
    ledger.paid(K3, "t3", images(2))
    ledger.partly_saved(K3, ["p3_1.png"], {"type": "E", "message": "m"})
    ledger.paid(K4, "t4", images(2))
    ledger.saved(K4, ["p4_0.png", "p4_1.png"])
    ledger.failed("5" * 32, {"type": "F", "message": "f"})
    ledger.unknown("6" * 32, {"type": "U", "message": "u"})


ROWS_BY_STATE = [
    ([State.PLANNED], [1]),
    ([State.SENDING], [2]),
    ([State.PAID], [3]),
    ([State.SAVED], [4]),
    ([State.FAILED], [5]),
    ([State.UNKNOWN], [6]),
    ([State.PLANNED, State.FAILED, State.UNKNOWN], [1, 5, 6]),
    ([State.UNKNOWN, State.PLANNED], [1, 6]),
    (list(STATES), [1, 2, 3, 4, 5, 6]),
    ([], []),
]


def test_rows_yields_the_requests_in_the_states_asked_in_input_order(ledger: Ledger) -> None:
    all_states(ledger)
    for states, lines_back in ROWS_BY_STATE:
        assert [row.line for row in ledger.rows(iter(states))] == lines_back, states


def test_rows_reads_chunk_by_chunk_without_losing_or_repeating_a_row(ledger: Ledger) -> None:
    all_states(ledger)
    for chunk in (1, 2, 5, 6, 500):
        assert [row.line for row in ledger.rows(STATES, chunk=chunk)] == [1, 2, 3, 4, 5, 6]


def test_paid_requests_whose_lines_left_the_input_are_found_and_garbled_ones_skipped(
    ledger: Ledger,
) -> None:
    """Their images are still to download (free), whatever the new input says; a row that no
    longer reads is left for recovery rather than stopping the run."""
    ledger.plan([planned(n, key, f"p{n}") for n, key in enumerate((K1, K2, K3, K4), 1)])
    keys = [K1, K2, K3, K4, "5" * 32, "6" * 32]
    ledger.plan([planned(n, key, f"p{n}") for n, key in enumerate(keys[4:], 5)])
    for key in keys:
        ledger.sending(key)
        ledger.paid(key, f"task-{key[0]}", images(1))
    ledger.saved(K4, ["p4_0.png"])  # saved: nothing left to download
    ledger.begin_planning()
    ledger.plan([planned(1, K1, "p1")])  # the new input holds only K1
    garble = "UPDATE requests SET {} WHERE key = ?"
    ledger._db.execute(garble.format("images = 'not json'"), (K3,))  # ValueError
    ledger._db.execute(garble.format("cost = 'abc'"), ("5" * 32,))  # ArithmeticError
    ledger._db.execute(garble.format("cost = X'31'"), ("6" * 32,))  # TypeError (a blob)
    found = list(ledger.paid_outside_input())
    assert [(row.line, row.key, row.state, row.task_id) for row in found] == [
        (None, K2, State.PAID, "task-2"),
    ]
    assert found[0].missing_images() == images(1)


def test_totals_count_what_is_left_to_send_and_to_download(ledger: Ledger) -> None:
    all_states(ledger)
    assert ledger.totals([State.PLANNED, State.FAILED, State.UNKNOWN]) == (3, 6, Decimal("0.00450"))
    assert ledger.totals([State.PAID]) == (1, 1, Decimal(0))  # one image still to download
    assert ledger.totals([State.SAVED, State.SENDING]) == (2, 0, Decimal(0))
    assert ledger.totals([]) == (0, 0, Decimal(0))


def test_totals_count_images_to_download_only_for_paid_requests(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a", image_num=2), planned(2, K2, "b", image_num=2)])
    for key in (K1, K2):
        ledger.sending(key)
        ledger.paid(key, "t", images(2))
    ledger.saved(K1, ["a_0.png"])  # saved, though its name for image 1 is not recorded
    assert ledger.totals([State.SAVED]) == (1, 0, Decimal(0))
    assert ledger.totals([State.PAID]) == (1, 2, Decimal(0))


def test_counts_one_per_line_of_this_run_by_state(ledger: Ledger) -> None:
    all_states(ledger)
    ledger.plan([PlannedLine(7, None, "x", error="bad"), PlannedLine(8, None, "y", error="bad")])
    assert ledger.counts() == Counter(
        {
            State.PLANNED: 1,
            State.SENDING: 1,
            State.PAID: 1,
            State.SAVED: 1,
            State.FAILED: 1,
            State.UNKNOWN: 1,
            "invalid": 2,
        }
    )


def test_an_expired_row_is_one_whose_every_missing_image_has_expired(ledger: Ledger) -> None:
    past = datetime.now(UTC) - timedelta(seconds=5)
    future = datetime.now(UTC) + timedelta(hours=1)
    ledger.plan([planned(1, K1, "a", image_num=2)])
    ledger.sending(K1)
    ledger.paid(K1, "t", images(2, past))
    assert only(ledger, K1).expired is True
    ledger.saved(K1, ["a_0.png", "a_1.png"])
    assert only(ledger, K1).expired is False  # nothing missing
    ledger.sending(K1)  # refused: saved is final
    ledger.lost_files(K1, [])  # back to paid, and sent again: the steps the table allows
    ledger.sending(K1, again=True)
    mixed = [images(1, past)[0], GeneratedImage("https://host/1.png", 60, "png", future, 1)]
    ledger.paid(K1, "t", mixed)
    assert only(ledger, K1).expired is False
    ledger.partly_saved(K1, ["a_1.png"], {"type": "E", "message": "m"})
    assert only(ledger, K1).expired is True  # the one left has expired
    ledger.sending(K1, again=True)
    ledger.paid(K1, "t", images(1, None))
    assert only(ledger, K1).expired is False  # no expiry stated


@pytest.mark.parametrize(
    ("files", "missing"),
    [
        ([], [0, 1, 2]),
        (["cat_0.png"], [1, 2]),
        (["cat_1-2.png", "cat_2.webp"], [0]),
        (["x_12.png"], [0, 1, 2]),
        (["no-index.png", "a_b.png"], [0, 1, 2]),
        (["cat_0.png", "cat_1.png", "cat_2-3.jpg"], []),
        (["x_1-2-3.png"], [0, 2]),
        (["a_b_1.png"], [0, 2]),
        (["a.b_2.png"], [0, 1]),
    ],
)
def test_missing_images_reads_the_index_from_each_saved_file_name(
    ledger: Ledger, files: list[str], missing: list[int]
) -> None:
    ledger.plan([planned(1, K1, "cat", image_num=3)])
    ledger.sending(K1)
    ledger.paid(K1, "t", images(3))
    if files:
        ledger.partly_saved(K1, files, {"type": "E", "message": "m"})
    assert [image.index for image in only(ledger, K1).missing_images()] == missing


# --- garbled rows -------------------------------------------------------------------------------


def test_a_garbled_row_is_reported_and_skipped_by_rows(ledger: Ledger, reports: list[str]) -> None:
    ledger.plan([planned(1, K1, "a"), planned(2, K2, "b"), planned(3, K3, "c")])
    ledger._db.execute("UPDATE requests SET body = '{' WHERE key = ?", (K2,))
    ledger._db.execute("UPDATE requests SET cost = 'lots' WHERE key = ?", (K3,))
    seen: list[str] = []
    assert [row.line for row in ledger.rows([State.PLANNED], report=seen.append)] == [1]
    assert seen == [
        "ledger.sqlite3: the request of line 2 is garbled (Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1)); left as it is",
        "ledger.sqlite3: the request of line 3 is garbled ([<class "
        "'decimal.ConversionSyntax'>]); left as it is",
    ]
    assert [row.line for row in ledger.rows([State.PLANNED])] == [1]  # no report: still skipped
    assert ledger.totals([State.PLANNED]) == (1, 1, Decimal("0.00075"))
    assert reports == []


# (the damage, the reason the report and the set-aside file give for it)
GARBLES = [
    ("UPDATE requests SET seed = 'x'", "seed is not an integer"),
    ("UPDATE requests SET seed = 1.5", "seed is not an integer"),
    ("UPDATE requests SET seed = CAST(x'ff' AS TEXT)", "seed is not an integer"),
    ("UPDATE requests SET key = NULL", "no key"),
    ("UPDATE requests SET request = '{'", "request is not JSON"),
    ("UPDATE requests SET body = '{'", "body is not JSON"),
    # 100,000 "[": past Python's recursion limit, which json.loads meets as RecursionError
    (
        "UPDATE requests SET body = replace(hex(zeroblob(100000)), '00', '[')",
        "body is nested too deeply",
    ),
    ("UPDATE requests SET body = '{\"seed\": 1}'", "body has no text prompt"),
    ("UPDATE requests SET body = '{\"prompt\": 3}'", "body has no text prompt"),
    ("UPDATE requests SET body = '[\"prompt\"]'", "body has no text prompt"),
    ("UPDATE requests SET body = '\"prompt\"'", "body has no text prompt"),
    ('UPDATE requests SET body = \'{"prompt": "p"}\'', "body has no image_num"),
    ('UPDATE requests SET body = \'{"prompt": "p", "image_num": true}\'', "body has no image_num"),
    ("UPDATE requests SET cost = 'lots'", "cost is not an amount"),
    ("UPDATE requests SET cost = 'NaN'", "cost is not an amount"),
    ("UPDATE requests SET cost = 'sNaN'", "cost is not an amount"),
    ("UPDATE requests SET cost = '-Infinity'", "cost is not an amount"),
    ("UPDATE requests SET cost = '-0.001'", "cost is not an amount"),
    ("UPDATE requests SET cost = '1E+1000000'", "cost is not an amount"),
    ("UPDATE requests SET cost = '1E+31'", "cost is not an amount"),  # past 30 digits
    ("UPDATE requests SET task_id = CAST(x'ff' AS TEXT)", "task_id is not UTF-8"),
    ("UPDATE requests SET images = 'no'", "images is not JSON"),
    ("UPDATE requests SET images = '{}'", "images is not a list of images"),
    ("UPDATE requests SET images = '[1]'", "images is not a list of images"),
    ('UPDATE requests SET images = \'[{"url": "u"}]\'', "images is not a list of images"),
    (
        'UPDATE requests SET images = \'[{"url": "u", "type": "png", "ttl": "x"}]\'',
        "images is not a list of images",
    ),
    (
        'UPDATE requests SET images = \'[{"url": "u", "type": "png", "expires_at": 3}]\'',
        "images is not a list of images",
    ),
    (
        'UPDATE requests SET images = \'[{"url": "u", "type": "png", "ttl": 1e999}]\'',
        "images is not a list of images",
    ),
    (
        'UPDATE requests SET images = \'[{"url": "u", "type": "png", "index": Infinity}]\'',
        "images is not a list of images",
    ),
    (
        "UPDATE requests SET images = "
        '\'[{"url": "u", "type": "png", "expires_at": "2026-01-01T00:00:00"}]\'',
        "images is not a list of images",
    ),
    ("UPDATE requests SET files = 'no'", "files is not JSON"),
    ("UPDATE requests SET files = '\"f\"'", "files is not a list of file names"),
    ("UPDATE requests SET files = '[1]'", "files is not a list of file names"),
    ("UPDATE requests SET error = 'no'", "error is not JSON"),
    ("UPDATE requests SET error = '[1]'", "error is not an object"),
    ("UPDATE requests SET request = CAST(x'ff' AS TEXT)", "request is not UTF-8"),
    ("UPDATE requests SET key = CAST(x'c3' AS TEXT)", "key is not UTF-8"),
]


def garble(directory: Path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(directory / LEDGER_NAME)) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute(f"{statement} WHERE rowid = 2")
        db.commit()


@pytest.mark.parametrize(("statement", "why"), GARBLES, ids=[s for s, _ in GARBLES])
def test_opening_sets_a_garbled_row_aside_says_why_and_keeps_the_rest(
    tmp_path: Path, statement: str, why: str
) -> None:
    planned_and_closed(tmp_path, planned(1, K1, "a"), planned(2, K2, "b"))
    garble(tmp_path, statement)
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        (aside,) = tmp_path.glob(f"{LEDGER_NAME}.garbled-*.jsonl")
        assert re.fullmatch(rf"ledger\.sqlite3\.garbled-{STAMP}\.jsonl", aside.name)
        assert reports == [
            f"ledger.sqlite3: 1 request(s) could not be read ({why}); kept in {aside.name}, "
            "restored from the other records where they can be"
        ]
        (kept,) = [json.loads(line) for line in aside.read_text().splitlines()]
        assert kept["why"] == why
        assert kept["row"][0] == "2"  # the rowid, then the columns, each as its repr
        assert len(kept["row"]) == 11
        assert [row.key for row in again.rows(STATES)] == [K1]
        assert again._db.execute("SELECT key FROM requests").fetchall() == [(K1,)]
    finally:
        again.close()


def test_a_row_whose_state_is_none_of_the_ledgers_is_garbled() -> None:
    # The table's CHECK keeps such a state out, and the database's own check (quick_check reads
    # CHECK constraints) sets the whole file aside first; the row-by-row reading still says it.
    good = (
        b"k",
        b"planned",
        b"0.003",
        None,
        b"{}",
        b'{"prompt": "p", "image_num": 1}',
        b"[]",
        b"[]",
        None,
    )
    _ledger._decoded((1, 11, *good))
    with pytest.raises(ValueError, match=r"\Astate is not one of the ledger's\Z"):
        _ledger._decoded((1, 11, good[0], b"gone", *good[2:]))


def test_several_garbled_rows_are_said_once_per_reason(tmp_path: Path) -> None:
    planned_and_closed(tmp_path, *(planned(n, key, "p") for n, key in enumerate([K1, K2, K3], 1)))
    with contextlib.closing(sqlite3.connect(tmp_path / LEDGER_NAME)) as db:
        db.execute("UPDATE requests SET cost = 'lots'")
        db.execute("UPDATE requests SET body = '{' WHERE rowid = 2")
        db.commit()
    reports: list[str] = []
    Ledger.open(tmp_path, reports.append).close()
    (aside,) = tmp_path.glob(f"{LEDGER_NAME}.garbled-*.jsonl")
    assert reports[0] == (
        "ledger.sqlite3: 3 request(s) could not be read (body is not JSON; cost is not an "
        f"amount); kept in {aside.name}, restored from the other records where they can be"
    )
    kept = [json.loads(line) for line in aside.read_text().splitlines()]
    assert [(line["row"][0], line["why"]) for line in kept] == [
        ("1", "cost is not an amount"),
        ("2", "body is not JSON"),
        ("3", "cost is not an amount"),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE requests SET error = ''",  # an empty error is no error
        'UPDATE requests SET error = \'{"type": "E"}\'',
        'UPDATE requests SET images = \'[{"url": "u", "type": "png"}]\', files = \'["f"]\'',
        'UPDATE requests SET images = \'[{"url": "u", "type": "png", "ttl": "60", "index": 1, '
        '"expires_at": "2026-12-07T10:00:00+00:00", "extra": null}]\'',
        "UPDATE requests SET cost = '0.00075'",
        "UPDATE requests SET cost = '1E+30'",  # the largest order of magnitude kept
    ],
)
def test_opening_keeps_every_row_that_still_decodes(tmp_path: Path, statement: str) -> None:
    planned_and_closed(tmp_path, planned(1, K1, "a"), planned(2, K2, "b"))
    garble(tmp_path, statement)
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        assert reports == []
        assert list(tmp_path.glob("*.garbled-*")) == []
        assert [key for (key,) in again._db.execute("SELECT key FROM requests")] == [K1, K2]
    finally:
        again.close()


def test_a_manifest_record_that_would_not_read_back_is_said_when_the_ledger_is_rebuilt(
    tmp_path: Path,
) -> None:
    first = Ledger.open(tmp_path, [].append)
    first.plan([planned(1, K1, "a"), planned(2, K2, "b")])
    first.export_manifest(tmp_path / MANIFEST_NAME)
    first.close()
    manifest = tmp_path / MANIFEST_NAME
    lines = manifest.read_text().splitlines()
    damaged = json.loads(lines[1]) | {"cost": "NaN"}  # the second request's record
    manifest.write_text("\n".join([lines[0], json.dumps(damaged), *lines[2:]]) + "\n")
    (tmp_path / LEDGER_NAME).write_bytes(b"not a database")
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        (aside,) = tmp_path.glob(f"{LEDGER_NAME}.unread-*.jsonl")
        assert (
            f"a recovered record of request {K2} could not be read (cost is not an amount); "
            f"skipped, and kept in {aside.name}"
        ) in reports
        assert [key for (key,) in again._db.execute("SELECT key FROM requests")] == [K1]
        # The manifest is written anew from the ledger: the record lives on beside it.
        again.export_manifest(manifest)
        assert K2 not in manifest.read_text()
        (kept,) = map(json.loads, aside.read_text().splitlines())
        assert kept["why"] == "cost is not an amount"
        assert (kept["record"]["key"], kept["record"]["cost"]) == (K2, "NaN")
    finally:
        again.close()


def test_a_garbled_row_is_restored_from_the_last_manifest(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path, [].append)
    first.plan([planned(1, K1, "a"), planned(2, K2, "b")])
    first.sending(K2)
    first.failed(K2, {"type": "E", "message": "m"})
    first.export_manifest(tmp_path / MANIFEST_NAME)
    first.close()
    garble(tmp_path, "UPDATE requests SET cost = 'lots'")
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        assert reports[1:] == ["recovered 1 request(s) from manifest.jsonl"]
        row = raw(again, K2)
        assert (row["state"], row["cost"], row["seed"]) == (State.FAILED, "0.00075", 11)
    finally:
        again.close()


def the_damaged_ledger(directory: Path) -> Path:
    """The one copy of a damaged ledger set aside in `directory` (its -wal and -shm apart)."""
    (damaged,) = [
        path
        for path in directory.glob(f"{LEDGER_NAME}.damaged-*")
        if not path.name.endswith(("-wal", "-shm"))
    ]
    return damaged


def test_a_damaged_database_is_set_aside_and_rebuilt(tmp_path: Path) -> None:
    (tmp_path / LEDGER_NAME).write_bytes(b"this is not a database, " * 100)
    (tmp_path / f"{LEDGER_NAME}-wal").write_bytes(b"wal")
    reports: list[str] = []
    ledger = Ledger.open(tmp_path, reports.append)
    try:
        damaged = the_damaged_ledger(tmp_path)
        assert re.fullmatch(rf"ledger\.sqlite3\.damaged-{STAMP}", damaged.name)
        assert damaged.read_bytes().startswith(b"this is not a database")
        assert Path(f"{damaged}-wal").read_bytes() == b"wal"
        assert reports == [
            f"ledger.sqlite3 is damaged (file is not a database); kept as {damaged.name} and "
            "rebuilt",
            f"{damaged.name}: no request could be read (file is not a database)",
        ]
        assert ledger.path == tmp_path / LEDGER_NAME  # the rebuilt one, where the old one was
        ledger.plan([planned(1, K1, "a")])
        assert ledger.seed_of(K1) == 11
        assert ledger._db.execute("SELECT value FROM meta").fetchone() == ("1",)
    finally:
        ledger.close()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda path: path.write_bytes(b""), "the file is empty (0 bytes)"),
        (
            lambda path: sqlite3.connect(path).execute("CREATE TABLE other (x)").connection.close(),
            "it holds no ledger",
        ),
    ],
    ids=["empty", "another-database"],
)
def test_a_file_sqlite_would_open_but_that_holds_no_ledger_is_set_aside_saying_why(
    tmp_path: Path, make: Any, why: str
) -> None:
    """SQLite opens both without an error (an empty file as an empty database); the ledger
    must not take either for its own and forget what it held, and the report says which."""
    make(tmp_path / LEDGER_NAME)
    reports: list[str] = []
    ledger = Ledger.open(tmp_path, reports.append)
    try:
        damaged = the_damaged_ledger(tmp_path)
        assert (
            reports[0] == f"ledger.sqlite3 is damaged ({why}); kept as {damaged.name} and rebuilt"
        )
        assert ledger._db.execute("SELECT value FROM meta").fetchone() == ("1",)
    finally:
        ledger.close()


def test_a_database_its_own_check_finds_damaged_is_reported_in_one_line(tmp_path: Path) -> None:
    planned_and_closed(
        tmp_path, *(planned(n, f"{n:032d}", "x" * 1500 + str(n)) for n in range(1, 201))
    )
    path = tmp_path / LEDGER_NAME
    data = bytearray(path.read_bytes())
    # A table leaf page (type 13) past the first few: its count of fragmented bytes made wrong
    # leaves every row readable, and only PRAGMA quick_check sees it.
    page = next(n for n in range(20, len(data) // 4096) if data[n * 4096] == 13)
    data[page * 4096 + 7] = 60
    path.write_bytes(bytes(data))
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        (aside,) = [p for p in tmp_path.glob(f"{LEDGER_NAME}.damaged-*") if "-" not in p.suffix]
        assert reports == [
            "ledger.sqlite3 is damaged (quick_check: *** in database main ***; Fragmentation of "
            f"0 bytes reported as 60 on page {page + 1}); kept as {aside.name} and rebuilt",
            f"recovered 200 request(s) from {aside.name}",
        ]
        assert list(again.rows(STATES)) == []  # no line of this run is planned yet
        assert again._db.execute("SELECT COUNT(*) FROM requests").fetchone() == (200,)
    finally:
        again.close()


def test_a_new_ledger_beside_a_manifest_restores_it_and_an_existing_one_does_not(
    tmp_path: Path,
) -> None:
    first = Ledger.open(tmp_path, [].append)
    first.plan([planned(1, K1, "a")])
    first.sending(K1)
    first.export_manifest(tmp_path / MANIFEST_NAME)
    first.release_journal()  # as a run ends: the manifest holds what the journal did
    first._db.execute("DELETE FROM requests")
    first.close()
    reports: list[str] = []
    existing = Ledger.open(tmp_path, reports.append)  # clean: its manifest is not read
    assert existing.seed_of(K1) is None
    existing.close()
    assert reports == []
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / LEDGER_NAME}{suffix}").unlink(missing_ok=True)
    fresh = Ledger.open(tmp_path, reports.append)
    try:
        assert reports == ["recovered 1 request(s) from manifest.jsonl"]
        row = raw(fresh, K1)
        assert row["state"] == State.UNKNOWN  # it was in flight when the manifest was written
    finally:
        fresh.close()


def test_a_step_the_ledger_cannot_commit_stays_in_the_journal_until_the_next_open(
    tmp_path: Path,
) -> None:
    """A full disk at the commit (tests/faults does this to a child, which mutmut cannot see):
    the step is refused, but the journal, another file, keeps it, and is not emptied at the end
    of the run, so that the next run knows the request was paid."""
    ledger = Ledger.open(tmp_path, [].append)
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)

    full = failing_at({"write.ledger": sqlite3.OperationalError("database or disk is full")})
    with hooked(full), pytest.raises(sqlite3.OperationalError, match="disk is full"):
        ledger.paid(K1, "task-1", images(1))
    assert raw(ledger, K1)["state"] == State.SENDING  # rolled back
    ledger.release_journal()  # as the run ends: the journal holds what the ledger lacks
    ledger.close()
    journal = [json.loads(line) for line in (tmp_path / JOURNAL_NAME).read_text().splitlines()]
    assert (journal[-1]["state"], journal[-1]["task_id"]) == (State.PAID, "task-1")
    reports: list[str] = []
    again = Ledger.open(tmp_path, reports.append)
    try:
        assert reports == [f"brought 1 request(s) up to date from {JOURNAL_NAME}"]
        assert (raw(again, K1)["state"], raw(again, K1)["task_id"]) == (State.PAID, "task-1")
    finally:
        again.close()


def test_a_journal_line_that_parses_but_is_not_a_whole_row_is_reported_and_skipped(
    tmp_path: Path,
) -> None:
    """A flipped byte can leave valid JSON: such a line is skipped like a torn one. It stopped
    the ledger from opening (a KeyError, or the table's CHECK on the state) on every run."""
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    good = {"key": K1, "body": body("a"), "state": "paid", "sends": 1, "task_id": "t"}
    records = [
        {k: v for k, v in good.items() if k != "state"},
        good | {"state": "pbid", "sends": 5},
        good | {"body": {"prompt": "a", "seed": 11}, "sends": 5},
        good | {"sends": "5"},
        good,
    ]
    (tmp_path / JOURNAL_NAME).write_text("".join(json.dumps(r) + "\n" for r in records))
    reports: list[str] = []
    ledger = Ledger.open(tmp_path, reports.append)
    try:
        (aside,) = tmp_path.glob(f"{JOURNAL_NAME}.unread-*")
        kept = f"skipped, and kept in {aside.name}"
        assert reports == [
            f"{JOURNAL_NAME} line 1: cannot be read (no state of the ledger's); {kept}",
            f"{JOURNAL_NAME} line 2: cannot be read (no state of the ledger's); {kept}",
            f"{JOURNAL_NAME} line 3: cannot be read (no seed or image_num in its request body); "
            f"{kept}",
            f"{JOURNAL_NAME} line 4: cannot be read (its sends is not a count); {kept}",
            f"brought 1 request(s) up to date from {JOURNAL_NAME}",
        ]
        assert (raw(ledger, K1)["state"], raw(ledger, K1)["sends"]) == (State.PAID, 1)
        # Each as it was, the task id with it, whatever the journal becomes.
        ledger.export_manifest(tmp_path / MANIFEST_NAME)
        ledger.release_journal()
        assert (tmp_path / JOURNAL_NAME).read_text() == ""
        assert [json.loads(line) for line in aside.read_text().splitlines()] == records[:4]
    finally:
        ledger.close()


def test_a_journal_line_nested_too_deeply_is_kept_aside_and_the_ledger_opens(
    tmp_path: Path,
) -> None:
    # It made every open fail with RecursionError, so the batch could never run again.
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    deep = "[" * 100_000 + "]" * 100_000
    good = {"key": K1, "body": body("a"), "state": "paid", "sends": 1, "task_id": "t"}
    (tmp_path / JOURNAL_NAME).write_text(deep + "\n" + json.dumps(good) + "\n")
    reports: list[str] = []
    ledger = Ledger.open(tmp_path, reports.append)
    try:
        (aside,) = tmp_path.glob(f"{JOURNAL_NAME}.unread-*")
        assert reports == [
            f"{JOURNAL_NAME} line 1: cannot be read (nested too deeply); skipped, and kept in "
            f"{aside.name}",
            f"brought 1 request(s) up to date from {JOURNAL_NAME}",
        ]
        assert raw(ledger, K1)["state"] == State.PAID
        assert aside.read_text() == deep + "\n"
    finally:
        ledger.close()


def test_a_torn_last_journal_line_is_kept_as_it_was(tmp_path: Path) -> None:
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    torn = b'{"key": "' + K1.encode() + b'", "task_id": "t-9", "sta'
    (tmp_path / JOURNAL_NAME).write_bytes(torn)
    Ledger.open(tmp_path, [].append).close()
    (aside,) = tmp_path.glob(f"{JOURNAL_NAME}.unread-*")
    assert aside.read_bytes() == torn + b"\n"


def test_when_the_journal_fails_too_the_ledger_s_own_error_is_raised(tmp_path: Path) -> None:
    """Both files refuse the step (one full disk): the error said is the ledger's, and the
    journal's own failure does not replace it."""
    ledger = Ledger.open(tmp_path, [].append)
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)

    full = failing_at(
        {
            "write.ledger": sqlite3.OperationalError("database or disk is full"),
            "write.journal": OSError(28, "No space left on device"),
        }
    )
    try:
        with hooked(full), pytest.raises(sqlite3.OperationalError, match="disk is full"):
            ledger.paid(K1, "task-1", images(1))
    finally:
        ledger.close()


def test_the_journal_keeps_each_step_s_whole_row_error_included(
    tmp_path: Path, ledger: Ledger
) -> None:
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)
    ledger.failed(K1, {"type": "E", "message": "m"})
    *_, sent, failed = (tmp_path / JOURNAL_NAME).read_text().splitlines()
    assert (json.loads(sent)["state"], json.loads(sent)["error"]) == (State.SENDING, None)
    assert json.loads(failed) == {
        "key": K1, "request": {"prompt": "a"}, "body": body("a"), "cost": "0.00075",
        "state": State.FAILED, "task_id": None, "images": [], "files": [],
        "error": {"type": "E", "message": "m"}, "sends": 1,
    }  # fmt: skip


# --- restore ------------------------------------------------------------------------------------


def test_restore_skips_and_reports_a_record_that_would_not_read_back(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a")])
    ledger.sending(K1)
    before = raw(ledger, K1)
    reports: list[str] = []
    recovered = [
        # further along than what is held, but its image could never be read
        {
            "key": K1,
            "body": body("a"),
            "state": State.PAID,
            "sends": 2,
            "task_id": "t1",
            "images": [{"url": "u"}],
        },
        {"key": K2, "body": {"prompt": "b", "seed": 7}, "state": State.FAILED},  # no image_num
        {"key": K3, "body": body("c"), "state": State.FAILED, "cost": "NaN"},
        {"key": K4, "body": body("d"), "state": State.FAILED},  # sound
    ]
    assert ledger.restore(recovered, reports.append) == 1
    (aside,) = ledger.path.parent.glob(f"{LEDGER_NAME}.unread-*.jsonl")
    kept = f"skipped, and kept in {aside.name}"
    assert reports == [
        f"a recovered record of request {K1} (task t1) could not be read (images is not a "
        f"list of images); {kept}",
        f"a recovered record of request {K2} could not be read (no 'image_num'); {kept}",
        f"a recovered record of request {K3} could not be read (cost is not an amount); {kept}",
    ]
    assert [json.loads(line) for line in aside.read_text().splitlines()] == [
        {"why": "images is not a list of images", "record": recovered[0]},
        {"why": "no 'image_num'", "record": recovered[1]},
        {"why": "cost is not an amount", "record": recovered[2] | {"state": "failed"}},
    ]
    assert raw(ledger, K1) == before  # what was held of it stays as it was
    assert [key for (key,) in ledger._db.execute("SELECT key FROM requests")] == [K1, K4]
    assert ledger.restore(recovered) == 0  # K4 held now; the others skipped, reporter or not


def test_a_journal_record_that_would_not_read_back_is_skipped_at_every_open(
    tmp_path: Path,
) -> None:
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    line = {"key": K1, "body": body("a"), "state": "paid", "sends": 1, "task_id": "t1",
            "images": [{"url": "u"}]}  # fmt: skip
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(line) + "\n")
    for _ in range(2):
        reports: list[str] = []
        again = Ledger.open(tmp_path, reports.append)
        try:
            aside = sorted(tmp_path.glob(f"{LEDGER_NAME}.unread-*.jsonl"))[-1]
            assert reports == [
                f"a recovered record of request {K1} (task t1) could not be read (images is "
                f"not a list of images); skipped, and kept in {aside.name}"
            ]
            assert raw(again, K1)["state"] == State.PLANNED
            assert list(tmp_path.glob("*.garbled-*")) == []
        finally:
            again.close()


def test_a_journal_record_that_would_not_read_back_outlives_the_journal(tmp_path: Path) -> None:
    # A paid task the ledger cannot take: at a clean end the journal is emptied, and the
    # record, its task id and links with it, must still be on disk.
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    line = {"key": K1, "body": body("a"), "state": "paid", "sends": 1, "task_id": "t1",
            "images": [{"url": "https://x.example/1.png"}]}  # fmt: skip
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(line) + "\n")
    again = Ledger.open(tmp_path, [].append)
    try:
        again.export_manifest(tmp_path / MANIFEST_NAME)
        again.release_journal()
    finally:
        again.close()
    assert (tmp_path / JOURNAL_NAME).read_text() == ""  # emptied, as at every clean end
    (aside,) = tmp_path.glob(f"{LEDGER_NAME}.unread-*.jsonl")
    assert json.loads(aside.read_text()) == {
        "why": "images is not a list of images",
        "record": line,
    }


def test_an_unreadable_record_is_kept_whatever_it_holds(ledger: Ledger) -> None:
    # A record recovered from a damaged ledger may hold bytes where text was: kept by its repr.
    record = {"key": K2, "body": {"prompt": "b", "seed": 7}, "state": State.FAILED,
              "task_id": b"t-\xff"}  # fmt: skip
    assert ledger.restore([record], [].append) == 0
    (aside,) = ledger.path.parent.glob(f"{LEDGER_NAME}.unread-*.jsonl")
    assert json.loads(aside.read_text())["record"]["task_id"] == "b't-\\xff'"


def test_a_full_disk_while_keeping_an_unreadable_record_loses_nothing(tmp_path: Path) -> None:
    # The record is kept aside before anything can empty the journal: a disk that cannot take
    # the file stops the open, the journal still holds the record, and the next open keeps it.
    planned_and_closed(tmp_path, planned(1, K1, "a"))
    line = {"key": K1, "body": body("a"), "state": "paid", "sends": 1, "task_id": "t1",
            "images": [{"url": "u"}]}  # fmt: skip
    (tmp_path / JOURNAL_NAME).write_text(json.dumps(line) + "\n")
    full = failing_at({"write.file": OSError(errno.ENOSPC, "No space left on device")})
    with hooked(full), pytest.raises(OSError, match="No space left"):
        Ledger.open(tmp_path, [].append)
    assert list(tmp_path.glob(f"{LEDGER_NAME}.unread-*")) == []  # nothing half-written
    assert json.loads((tmp_path / JOURNAL_NAME).read_text()) == line
    Ledger.open(tmp_path, [].append).close()
    (aside,) = tmp_path.glob(f"{LEDGER_NAME}.unread-*.jsonl")
    assert json.loads(aside.read_text())["record"] == line


def test_restore_inserts_new_requests_with_their_defaults_and_advances_known_ones(
    ledger: Ledger,
) -> None:
    ledger.plan([planned(1, K1, "a")])
    ledger.plan([planned(2, K4, "d")])
    recovered = [
        {"key": K1, "body": body("a", 99), "state": State.SAVED},
        {"key": K4, "body": body("d", 98), "state": State.PLANNED},  # no further along: kept as is
        {"key": K2, "body": body("b", 7, 2), "state": State.PAID, "request": {"prompt": "b"},
         "cost": "0.0015", "task_id": "t", "images": [{"url": "u", "type": "png"}],
         "files": ["b_0.png"], "error": {"type": "E"}, "sends": 3},
        {"key": K3, "body": body("c"), "state": State.FAILED, "cost": None, "images": None,
         "files": None, "error": {}},
    ]  # fmt: skip
    assert ledger.restore(recovered) == 3
    assert (raw(ledger, K1)["seed"], raw(ledger, K1)["state"]) == (99, State.SAVED)  # further along
    assert raw(ledger, K4)["seed"] != 98  # already known, and as far along: untouched
    second = raw(ledger, K2)
    assert {name: second[name] for name in second if name != "updated"} == {
        "key": K2, "request": '{"prompt":"b"}',
        "body": '{"prompt":"b","seed":7,"image_num":2,"width":64,"height":64}', "seed": 7,
        "image_num": 2, "cost": "0.0015", "state": State.PAID, "task_id": "t",
        "images": '[{"url":"u","type":"png"}]', "files": '["b_0.png"]', "error": '{"type":"E"}',
        "sends": 3,
    }  # fmt: skip
    assert NOW.match(second["updated"])
    third = raw(ledger, K3)
    assert (third["request"], third["cost"], third["task_id"]) == ("null", "0", None)
    assert (third["images"], third["files"], third["error"], third["sends"]) == (
        "[]", "[]", None, 0,
    )  # fmt: skip
    assert ledger.restore(recovered) == 0
    assert ledger.restore([]) == 0


def test_progress_orders_records_by_sends_then_step_then_files_saved() -> None:
    """What `restore` compares: a record missing a field counts it at its earliest, and a
    state the table does not know (a journal line written by hand or damaged) as planned."""
    assert progress({}) == (0, 0, 0)
    assert progress({"sends": None, "state": State.PLANNED, "files": None}) == (0, 0, 0)
    assert progress({"sends": 2, "state": State.PAID, "files": ["a_0.png", "a_1.png"]}) == (2, 4, 2)
    assert progress({"sends": 1, "state": "done", "files": "a_0.png"}) == (1, 0, 0)


def test_restore_brings_in_a_record_with_more_sends_or_more_files_saved(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a", image_num=2), planned(2, K2, "b", image_num=2)])
    ledger.restore([
        {"key": K1, "body": body("a", 5, 2), "state": State.SAVED, "files": ["a_0.png"],
         "sends": 1},
        {"key": K2, "body": body("b", 6, 2), "state": State.SAVED, "sends": 1},
    ])  # fmt: skip
    # The same step and sends, one more file: further along.
    assert ledger.restore(
        [{"key": K1, "body": body("a", 5, 2), "state": State.SAVED, "files": ["a_0.png", "a_1.png"],
          "sends": 1}]
    ) == 1  # fmt: skip
    assert only(ledger, K1).files == ["a_0.png", "a_1.png"]
    # An earlier step of a later send: further along (it may have been billed again).
    assert (
        ledger.restore([{"key": K2, "body": body("b", 7, 2), "state": State.PAID, "sends": 2}]) == 1
    )
    assert (raw(ledger, K2)["state"], raw(ledger, K2)["sends"], raw(ledger, K2)["seed"]) == (
        State.PAID, 2, 7,
    )  # fmt: skip


# --- the manifest -------------------------------------------------------------------------------


def test_export_manifest_writes_one_exact_line_per_input_line(
    tmp_path: Path, ledger: Ledger
) -> None:
    prompt = "line\u2028para\u2029next\x85é"
    ledger.plan(
        [
            PlannedLine(1, K1, {"prompt": prompt}, body(prompt, 4), Decimal("0.00075")),
            PlannedLine(2, None, {"width": 3}, error="line 2: width: 3 is too small"),
            planned(3, K2, "b", seed=6, image_num=2),
            PlannedLine(4, None, None),
        ]
    )
    ledger.sending(K2)
    ledger.paid(K2, "t2", images(2))
    ledger.partly_saved(K2, ["b_0.png"], {"type": "E", "message": "m"})
    ledger.sending(K1)
    ledger.failed(K1, {"type": "F", "message": "f"})
    path = tmp_path / MANIFEST_NAME
    ledger.export_manifest(path)
    text = path.read_text(encoding="utf-8")
    entry = {"url": "https://host/0.png", "ttl": 3600, "type": "png", "expires_at": None,
             "index": 0, "extra": {"nsfw": False}}  # fmt: skip
    second_entry = {**entry, "url": "https://host/1.png", "index": 1}
    expected = [
        {"line": 1, "key": K1, "status": State.FAILED, "request": {"prompt": prompt},
         "body": body(prompt, 4), "seed": 4, "task_id": None, "cost": "0.00075", "files": [],
         "images": [], "error": {"type": "F", "message": "f"}, "sends": 1},
        {"line": 2, "key": None, "status": "invalid", "request": {"width": 3}, "body": None,
         "seed": None, "task_id": None, "cost": None, "files": [], "images": [],
         "error": {"message": "line 2: width: 3 is too small"}, "sends": 0},
        {"line": 3, "key": K2, "status": State.PAID, "request": {"prompt": "b"},
         "body": body("b", 6, 2), "seed": 6, "task_id": "t2", "cost": "0.00150",
         "files": ["b_0.png"], "images": [entry, second_entry],
         "error": {"type": "E", "message": "m"}, "sends": 1},
        {"line": 4, "key": None, "status": "invalid", "request": None, "body": None,
         "seed": None, "task_id": None, "cost": None, "files": [], "images": [], "error": None,
         "sends": 0},
    ]  # fmt: skip
    escaped = "line\\u2028para\\u2029next\\u0085é"
    assert text == "".join(
        json.dumps(item, ensure_ascii=False).replace(prompt, escaped) + "\n" for item in expected
    )
    assert escaped in text.splitlines()[0]
    assert text.count("\n") == 4
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".novita-")] == []


def test_export_manifest_ends_with_each_sent_request_no_longer_in_the_input(
    tmp_path: Path, ledger: Ledger
) -> None:
    """Recovery reads the manifest when the ledger is lost: a request sent by an earlier run
    may have been paid for even if its line has left the input, so it keeps a line (`null`);
    one never sent does not."""
    ledger.plan([planned(1, K1, "a"), planned(2, K2, "b"), planned(3, K3, "c")])
    ledger.sending(K2)
    ledger.unknown(K2, {"type": "E", "message": "m"})
    ledger.begin_planning()
    ledger.plan([planned(1, K1, "a")])  # K2 (sent) and K3 (never sent) have left the input
    path = tmp_path / MANIFEST_NAME
    ledger.export_manifest(path)
    written = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["line"], line["key"], line["status"]) for line in written] == [
        (1, K1, State.PLANNED),
        (None, K2, State.UNKNOWN),
    ]
    assert written[1]["sends"] == 1


def test_export_manifest_of_more_than_a_thousand_lines_keeps_every_line(
    tmp_path: Path, ledger: Ledger
) -> None:
    ledger.plan([PlannedLine(n, None, n, error="e") for n in range(1, 1203)])
    path = tmp_path / MANIFEST_NAME
    ledger.export_manifest(path)
    numbers = [json.loads(line)["line"] for line in path.read_text().splitlines()]
    assert numbers == list(range(1, 1203))


def test_export_manifest_replaces_the_previous_one(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / MANIFEST_NAME
    path.write_text("old\n")
    ledger.export_manifest(path)
    assert path.read_text() == ""


def test_export_manifest_passes_its_fault_point_with_the_new_file_whole_and_not_in_place(
    tmp_path: Path, ledger: Ledger
) -> None:
    """tests/faults kills a run at `manifest.written` (which mutmut does not run): the step must
    be reached, by that name, after the last write and before the old manifest is replaced."""
    ledger.plan([planned(1, K1, "a")])
    path = tmp_path / MANIFEST_NAME
    path.write_text("old\n")
    seen: list[tuple[str, str]] = []
    with hooked(lambda point: seen.append((point, path.read_text()))):
        ledger.export_manifest(path)
    assert [point for point, _ in seen].count("manifest.written") == 1
    assert seen[-1] == ("manifest.written", "old\n")
    assert {point for point, _ in seen} <= set(_faultpoints.POINTS)
    assert json.loads(path.read_text())["key"] == K1


# --- images and errors as the ledger keeps them -------------------------------------------------


def test_entry_of_and_image_of_round_trip() -> None:
    expires = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    image = GeneratedImage("https://host/2.webp", 60, "webp", expires, 2, {"k": 1})
    entry = entry_of(image)
    assert entry == {
        "url": "https://host/2.webp", "ttl": 60, "type": "webp",
        "expires_at": "2031-05-06T07:08:09+00:00", "index": 2, "extra": {"k": 1},
    }  # fmt: skip
    assert image_of(entry) == image
    plain = GeneratedImage("u", 0, "png", None, 0)
    assert entry_of(plain)["expires_at"] is None
    assert image_of(entry_of(plain)) == plain


def test_image_of_fills_in_what_an_older_entry_lacks() -> None:
    assert image_of({"url": "u", "type": "jpeg"}) == GeneratedImage("u", 0, "jpeg", None, 0, {})
    assert image_of({"url": "u", "type": "png", "ttl": None, "index": "3", "extra": None}) == (
        GeneratedImage("u", 0, "png", None, 3, {})
    )
    assert image_of({"url": "u", "type": "png", "ttl": "5"}).ttl == 5


def test_describe_error_keeps_type_message_and_what_the_error_knows() -> None:
    assert describe_error(RuntimeError("boom")) == {"type": "RuntimeError", "message": "boom"}
    invalid = ValidationError("width", 3, "at least 64", "width: 3 is too small")
    assert describe_error(invalid) == {
        "type": "ValidationError", "message": "width: 3 is too small", "field": "width",
    }  # fmt: skip
    billed = APIConnectionError("lost")
    billed.possibly_billed = True
    assert describe_error(billed) == {
        "type": "APIConnectionError", "message": "lost", "possibly_billed": True,
    }  # fmt: skip
    response = httpx.Response(500, request=httpx.Request("POST", "https://api.example.com"))
    status = InternalServerError(
        response, {"code": 500, "reason": "TASK_FAILED", "metadata": {"task_id": "t-1"}}, None
    )
    assert describe_error(status) == {
        "type": "InternalServerError",
        "message": str(status),
        "status_code": 500,
        "reason": "TASK_FAILED",
        "task_id": "t-1",
        **({"possibly_billed": True} if status.possibly_billed else {}),
    }


# --- transactions -------------------------------------------------------------------------------


def delete_then_fail(ledger: Ledger, table: str) -> None:
    with ledger._transaction() as db:
        db.execute(f"DELETE FROM {table}")  # noqa: S608 - a table name of this test
        raise RuntimeError("stop")


def test_a_failing_transaction_is_rolled_back_and_releases_the_lock(ledger: Ledger) -> None:
    ledger.plan([planned(1, K1, "a")])
    with pytest.raises(RuntimeError):
        delete_then_fail(ledger, "requests")
    assert ledger.seed_of(K1) == 11  # the delete was rolled back
    assert not ledger._lock.locked()
    with pytest.raises(RuntimeError):
        delete_then_fail(ledger, "lines")
    assert lines(ledger) == [(1, K1, '{"prompt":"a"}', None)]
    assert not ledger._lock.locked()


def test_the_stamp_of_a_set_aside_file_is_utc_whatever_the_local_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9 all year: local and UTC hours differ
    time.tzset()
    try:
        before = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        stamp = datetime.strptime(_stamp(), "%Y%m%dT%H%M%S.%fZ").replace(microsecond=0)
        after = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        assert before <= stamp <= after
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_manifest_is_staged_beside_itself_so_that_it_can_be_linked_into_place(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    from novita_flux import _images

    staged_in: list[Path | None] = []
    real = _images.staged_file

    def spy(directory: Path) -> Any:
        staged_in.append(directory)
        return real(directory)

    monkeypatch.setattr(_images, "staged_file", spy)
    out = tmp_path / "elsewhere"
    out.mkdir()
    ledger.export_manifest(out / MANIFEST_NAME)
    assert staged_in == [out]  # the same directory, hence the same file system
    assert (out / MANIFEST_NAME).is_file()


def test_every_garbled_row_is_kept_on_a_line_of_its_own_and_the_ledger_knows_its_path(
    tmp_path: Path,
) -> None:
    planned_and_closed(tmp_path, planned(1, K1, "a"), planned(2, K2, "b"), planned(3, K3, "c"))
    with contextlib.closing(sqlite3.connect(tmp_path / LEDGER_NAME)) as db, db:
        db.execute("UPDATE requests SET cost = 'lots' WHERE key IN (?, ?)", (K2, K3))
    again = Ledger.open(tmp_path, [].append)
    try:
        assert again.path == tmp_path / LEDGER_NAME
        (aside,) = tmp_path.glob(f"{LEDGER_NAME}.garbled-*.jsonl")
        lines = aside.read_text().splitlines()
        assert [json.loads(line)["row"][0] for line in lines] == ["2", "3"]
        assert aside.read_text().endswith("\n")
    finally:
        again.close()
