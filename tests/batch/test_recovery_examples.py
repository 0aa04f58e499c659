"""Explicit examples for rebuilding a ledger (_recovery): each record it reads back (a damaged
database, a manifest of either format, image sidecars), the exact rows it yields, and the exact
line it reports for what it cannot read.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from novita_flux._identity import normalised, request_key
from novita_flux._recovery import (
    _database_rows,
    _manifest_rows,
    _sidecar_rows,
    restore_from,
)

K1, K2 = "1" * 32, "2" * 32
BODY = {"prompt": "a", "seed": 11, "image_num": 1, "width": 64, "height": 64}


def database(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A requests table with the ledger's columns, and no CHECK: a damaged file has none."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE requests (key TEXT, request TEXT, body TEXT, cost TEXT, state TEXT, "
            "task_id TEXT, images TEXT, files TEXT, error TEXT, sends INTEGER)"
        )
        for row in rows:
            db.execute(
                "INSERT INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row["key"],
                    row.get("request", '{"prompt": "a"}'),
                    row.get("body", json.dumps(BODY)),
                    row.get("cost", "0.00075"),
                    row.get("state", "saved"),
                    row.get("task_id", "t-1"),
                    row.get("images", "[]"),
                    row.get("files", "[]"),
                    row.get("error"),
                    row.get("sends", 1),
                ),
            )
        db.commit()
    return path


def unheard(said: str) -> None:
    raise AssertionError(f"nothing was to be reported, but: {said}")


def read(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return list(rows)


# --- a damaged database -------------------------------------------------------------------------


def test_database_rows_are_decoded_column_by_column(tmp_path: Path) -> None:
    path = database(
        tmp_path / "db",
        [
            {
                "key": K1,
                "images": '[{"url": "u", "index": 0}]',
                "files": '["a_0.png"]',
                "error": '{"type": "E"}',
                "sends": 2,
            }
        ],
    )
    reports: list[str] = []
    assert read(_database_rows(path, reports.append)) == [
        {
            "key": K1,
            "request": {"prompt": "a"},
            "body": BODY,
            "cost": "0.00075",
            "state": "saved",
            "task_id": "t-1",
            "images": [{"url": "u", "index": 0}],
            "files": ["a_0.png"],
            "error": {"type": "E"},
            "sends": 2,
        }
    ]
    assert reports == []


@pytest.mark.parametrize(
    ("stored", "state"),
    [
        ("saved", "saved"),
        ("paid", "paid"),
        ("failed", "failed"),
        ("planned", "planned"),
        ("unknown", "unknown"),
        ("sending", "unknown"),  # it was in flight when the file was damaged
        ("done", "saved"),
        ("generated", "paid"),
        ("from the future", "unknown"),  # what cannot be told may have been billed
    ],
)
def test_database_states_are_read_as_what_they_say_about_money(
    tmp_path: Path, stored: str, state: str
) -> None:
    path = database(tmp_path / "db", [{"key": K1, "state": stored}])
    (row,) = _database_rows(path, unheard)
    assert row["state"] == state


def test_an_empty_error_is_no_error(tmp_path: Path) -> None:
    path = database(tmp_path / "db", [{"key": K1, "error": ""}, {"key": K2, "error": None}])
    assert [row["error"] for row in _database_rows(path, unheard)] == [None, None]


def test_every_row_is_read_across_the_rowid_ranges(tmp_path: Path) -> None:
    keys = [f"{n:032d}" for n in range(1, 131)]  # rowids 1..130: three ranges of 64
    path = database(tmp_path / "db", [{"key": key} for key in keys])
    reports: list[str] = []
    assert [row["key"] for row in _database_rows(path, reports.append)] == keys
    assert reports == []


def test_rows_at_the_edges_of_a_range_are_read_once(tmp_path: Path) -> None:
    path = database(tmp_path / "db", [])
    with contextlib.closing(sqlite3.connect(path)) as db:
        for rowid in (0, 63, 64, 127, 128):
            db.execute(
                "INSERT INTO requests (rowid, key, request, body, cost, state, images, files) "
                "VALUES (?, ?, '{}', ?, '0', 'saved', '[]', '[]')",
                (rowid, f"{rowid:032d}", json.dumps(BODY)),
            )
        db.commit()
    keys = [row["key"] for row in _database_rows(path, unheard)]
    assert keys == [f"{rowid:032d}" for rowid in (0, 63, 64, 127, 128)]


def test_an_empty_table_yields_nothing_and_says_nothing(tmp_path: Path) -> None:
    reports: list[str] = []
    assert read(_database_rows(database(tmp_path / "db", []), reports.append)) == []
    assert reports == []


def test_a_damaged_page_costs_only_the_rows_of_its_range(tmp_path: Path) -> None:
    """One bad leaf page in the middle of the table: the ranges around it are still read."""
    keys = [f"{n:032d}" for n in range(1, 201)]
    big = json.dumps(BODY | {"prompt": "x" * 1500})  # about two rows per 4 KiB page
    path = database(tmp_path / "db", [{"key": key, "body": big} for key in keys])
    data = bytearray(path.read_bytes())
    page = 4096 * 40  # a leaf page holding rows in the 64..127 range
    assert b"x" * 100 in data[page : page + 4096]
    data[page : page + 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))
    reports: list[str] = []
    read_keys = [row["key"] for row in _database_rows(path, reports.append)]
    assert reports == ["db: rows 64 to 127 could not be read (database disk image is malformed)"]
    assert read_keys == keys[:63] + keys[127:]  # rowids 1..63 and 128..200


@pytest.mark.parametrize(
    "garbled",
    [
        {"request": "{not json"},
        {"body": "{not json"},
        {"images": "no"},
        {"files": "no"},
        {"error": "no"},
        {"images": None},  # json.loads(None): a TypeError
    ],
)
def test_a_garbled_row_is_reported_by_key_and_the_others_are_kept(
    tmp_path: Path, garbled: dict[str, Any]
) -> None:
    path = database(tmp_path / "db", [{"key": K1}, {"key": K2, **garbled}])
    reports: list[str] = []
    assert [row["key"] for row in _database_rows(path, reports.append)] == [K1]
    assert reports == [f"db: request {K2} is garbled; skipped"]


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"this is not a database, " * 100, "file is not a database"),
        (None, "no such table: requests"),
    ],
)
def test_a_database_that_cannot_be_read_at_all_is_reported_once(
    tmp_path: Path, content: bytes | None, why: str
) -> None:
    path = tmp_path / "ledger.sqlite3.damaged-x"
    if content is None:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE other (x)")
    else:
        path.write_bytes(content)
    reports: list[str] = []
    assert read(_database_rows(path, reports.append)) == []
    assert reports == [f"ledger.sqlite3.damaged-x: no request could be read ({why})"]


def test_a_database_is_opened_read_only_and_never_created(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3.damaged-x"  # set aside, then lost
    reports: list[str] = []
    assert read(_database_rows(path, reports.append)) == []
    assert reports == [
        "ledger.sqlite3.damaged-x: no request could be read (unable to open database file)"
    ]
    assert list(tmp_path.iterdir()) == []


# --- a manifest ---------------------------------------------------------------------------------


def manifest(path: Path, *entries: Any) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return path


def entry(**fields: Any) -> dict[str, Any]:
    return {"key": K1, "request": {"prompt": "a"}, "body": BODY, "status": "saved"} | fields


def test_a_manifest_entry_becomes_a_row(tmp_path: Path) -> None:
    path = manifest(
        tmp_path / "manifest.jsonl",
        entry(
            cost="0.00075",
            task_id="t-1",
            images=[{"url": "u"}],
            files=["a_0.png"],
            error={"type": "E"},
            line=1,
            sends=2,
            unknown_field=True,
        ),
    )
    assert read(_manifest_rows(path, unheard)) == [
        {
            "key": K1,
            "request": {"prompt": "a"},
            "body": BODY,
            "cost": "0.00075",
            "state": "saved",
            "task_id": "t-1",
            "images": [{"url": "u"}],
            "files": ["a_0.png"],
            "error": {"type": "E"},
            "sends": 2,
        }
    ]


def test_missing_fields_of_an_entry_get_their_defaults(tmp_path: Path) -> None:
    path = manifest(tmp_path / "m", {"key": K1, "body": BODY, "status": "paid", "images": None})
    assert read(_manifest_rows(path, unheard)) == [
        {
            "key": K1,
            "request": None,
            "body": BODY,
            "cost": None,
            "state": "paid",
            "task_id": None,
            "images": [],
            "files": [],
            "error": None,
            "sends": 0,  # a manifest from before the journal: the earliest step
        }
    ]


@pytest.mark.parametrize(
    "sends", [-1, True, "2", 1.5, None], ids=["negative", "bool", "text", "fraction", "null"]
)
def test_a_manifest_count_of_sends_that_is_not_a_count_reads_as_none(
    tmp_path: Path, sends: Any
) -> None:
    path = manifest(tmp_path / "m", entry(sends=sends))
    (row,) = read(_manifest_rows(path, unheard))
    assert row["sends"] == 0


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("saved", "saved"),
        ("done", "saved"),  # the manifest-only format
        ("paid", "paid"),
        ("generated", "paid"),  # the manifest-only format
        ("sending", "unknown"),
        ("unknown", "unknown"),
        ("failed", "failed"),
        ("planned", "planned"),
    ],
)
def test_manifest_statuses_are_read_as_ledger_states(
    tmp_path: Path, status: str, state: str
) -> None:
    (row,) = _manifest_rows(manifest(tmp_path / "m", entry(status=status)), unheard)
    assert row["state"] == state


@pytest.mark.parametrize(
    "skipped",
    [
        entry(status="invalid"),  # a line that was not a request
        entry(status="from the future"),
        {"key": K1, "body": BODY},  # no status at all
        entry(body=None),  # nothing was ever sent for it
        entry(body=[1]),
    ],
)
def test_entries_without_a_known_status_or_a_body_are_passed_over_in_silence(
    tmp_path: Path, skipped: dict[str, Any]
) -> None:
    reports: list[str] = []
    path = manifest(tmp_path / "m", skipped, entry(key=K2))
    assert [row["key"] for row in _manifest_rows(path, reports.append)] == [K2]
    assert reports == []


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("[1, 2]", "not an object"),
        ('"text"', "not an object"),
        ('{"key": ', "Expecting value: line 2 column 1 (char 9)"),  # the line's own newline
        ('{"status": [5], "body": {}}', "unhashable type: 'list'"),  # a status that is no text
    ],
)
def test_unreadable_manifest_lines_are_reported_by_position(
    tmp_path: Path, line: str, why: str
) -> None:
    path = manifest(tmp_path / "manifest.jsonl", entry(), line, entry(key=K2))
    reports: list[str] = []
    assert [row["key"] for row in _manifest_rows(path, reports.append)] == [K1, K2]
    assert reports == [f"manifest.jsonl line 2: cannot be read ({why}); skipped"]


def test_a_line_that_is_not_utf8_is_reported_and_the_next_is_read(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_bytes(b"\xff\xfe{}\n" + json.dumps(entry()).encode() + b"\n")
    reports: list[str] = []
    assert [row["key"] for row in _manifest_rows(path, reports.append)] == [K1]
    (said,) = reports
    assert said.startswith("manifest.jsonl line 1: cannot be read ('utf-8' codec can't decode")
    assert said.endswith("; skipped")


def test_a_manifest_only_entry_is_keyed_by_content_and_occurrence(tmp_path: Path) -> None:
    request = {"prompt": "a", "width": 64, "height": 64}
    old = {"line": 1, "key": "0123abcd0123abcd", "request": request, "body": BODY}
    path = manifest(
        tmp_path / "m",
        old | {"status": "done"},
        old | {"line": 2, "status": "generated"},
        old | {"line": 3, "status": "done", "request": {"prompt": "b", "width": 64}},
    )
    keys = [row["key"] for row in _manifest_rows(path, unheard)]
    first = request_key(normalised(request))
    assert keys == [first, f"{first}#2", request_key(normalised({"prompt": "b", "width": 64}))]
    assert len(first) == 32


def test_a_manifest_only_entry_without_its_request_is_keyed_by_its_body(tmp_path: Path) -> None:
    path = manifest(tmp_path / "m", {"key": 7, "request": "text", "body": BODY, "status": "done"})
    (row,) = _manifest_rows(path, unheard)
    assert row["key"] == request_key(normalised(BODY))
    assert row["request"] == "text"  # kept as it was


@pytest.mark.parametrize(
    ("key", "kept"), [("a" * 32, True), ("a" * 40 + "#2", True), ("a" * 31, False), (None, False)]
)
def test_a_key_of_32_characters_or_more_is_this_version_s(
    tmp_path: Path, key: str | None, kept: bool
) -> None:
    (row,) = _manifest_rows(manifest(tmp_path / "m", entry(key=key)), unheard)
    assert (row["key"] == key) is kept


def test_a_manifest_only_entry_the_api_would_refuse_is_reported(tmp_path: Path) -> None:
    path = manifest(tmp_path / "m", entry(key=None, request={"prompt": ""}), entry(key=K2))
    reports: list[str] = []
    assert [row["key"] for row in _manifest_rows(path, reports.append)] == [K2]
    (said,) = reports
    assert said.startswith("m line 1: cannot be read (")
    assert "prompt" in said


# --- image sidecars -----------------------------------------------------------------------------


def sidecar(directory: Path, name: str, data: Any) -> None:
    text = data if isinstance(data, str) else json.dumps(data)
    (directory / f"{name}.json").write_text(text)


def batch_sidecar(key: str = K1, **fields: Any) -> dict[str, Any]:
    return {
        "task_id": "t-1",
        "cost_usd": "0.00075",
        "request": BODY,
        "batch": {"key": key},
    } | fields


def test_sidecars_of_one_request_become_one_saved_row_with_every_file(tmp_path: Path) -> None:
    sidecar(tmp_path, "a_1.png", batch_sidecar())
    sidecar(tmp_path, "a_0.png", batch_sidecar())
    sidecar(tmp_path, "b_0.png", batch_sidecar(K2, task_id="t-2"))
    assert read(_sidecar_rows(tmp_path, unheard)) == [
        {
            "key": K1,
            "request": BODY,
            "body": BODY,
            "cost": "0.00075",
            "state": "saved",
            "task_id": "t-1",
            "files": ["a_0.png", "a_1.png"],  # in name order
            "sends": 1,  # a saved image was sent for at least once
        },
        {
            "key": K2,
            "request": BODY,
            "body": BODY,
            "cost": "0.00075",
            "state": "saved",
            "task_id": "t-2",
            "files": ["b_0.png"],
            "sends": 1,
        },
    ]


def test_files_are_listed_in_name_order_whatever_the_directory_order(tmp_path: Path) -> None:
    names = [f"a_{index:02d}.png" for index in range(24)]
    for name in reversed(names):  # enough names that the directory's own order shows
        sidecar(tmp_path, name, batch_sidecar())
    (row,) = _sidecar_rows(tmp_path, unheard)
    assert row["files"] == names


def test_a_sidecar_without_cost_or_task_still_says_the_image_was_paid(tmp_path: Path) -> None:
    sidecar(tmp_path, "a_0.png", {"request": BODY, "batch": {"key": K1}})
    (row,) = _sidecar_rows(tmp_path, unheard)
    assert (row["cost"], row["task_id"], row["state"]) == (None, None, "saved")


@pytest.mark.parametrize(
    "data",
    [
        {"task_id": "t", "request": BODY},  # saved by `generate`, not by a batch
        {"batch": None, "request": BODY},
        {"batch": "k", "request": BODY},
        [1, 2],
        "null",
    ],
)
def test_json_files_not_written_by_a_batch_are_passed_over_in_silence(
    tmp_path: Path, data: Any
) -> None:
    sidecar(tmp_path, "x", data)
    sidecar(tmp_path, "y", batch_sidecar())  # read after it: passing over is not stopping
    reports: list[str] = []
    assert [row["key"] for row in _sidecar_rows(tmp_path, reports.append)] == [K1]
    assert reports == []


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"batch": {}, "request": BODY}, "'key'"),
        ({"batch": {"key": K1}}, "'request'"),
        ({"batch": {"key": 5}, "request": BODY}, "no batch key or request"),
        ({"batch": {"key": K1}, "request": [1]}, "no batch key or request"),
        (
            "{not json",
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    ],
)
def test_an_unreadable_batch_sidecar_is_reported_and_the_others_are_read(
    tmp_path: Path, data: Any, why: str
) -> None:
    sidecar(tmp_path, "a", data)
    sidecar(tmp_path, "b", batch_sidecar())
    reports: list[str] = []
    assert [row["key"] for row in _sidecar_rows(tmp_path, reports.append)] == [K1]
    assert reports == [f"a.json: cannot be read ({why}); skipped"]


def test_a_sidecar_that_is_not_utf8_or_not_a_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(b"\xff{}")
    (tmp_path / "b.json").mkdir()
    reports: list[str] = []
    assert read(_sidecar_rows(tmp_path, reports.append)) == []
    assert [said.split(" (")[0] for said in reports] == [
        "a.json: cannot be read",
        "b.json: cannot be read",
    ]
    assert "'utf-8' codec can't decode" in reports[0]
    assert "Is a directory" in reports[1]


# --- restore_from: the order of trust -----------------------------------------------------------


class Restorer:
    """A ledger's restore: keeps the first row of each key; says how many were new."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.calls = 0

    def __call__(self, rows: Iterable[dict[str, Any]]) -> int:
        self.calls += 1
        before = len(self.rows)
        for row in rows:
            self.rows.setdefault(row["key"], row)
        return len(self.rows) - before


def test_records_are_read_most_trusted_first_and_each_source_is_reported(tmp_path: Path) -> None:
    damaged = database(tmp_path / "ledger.sqlite3.damaged-x", [{"key": K1, "state": "failed"}])
    manifest(tmp_path / "manifest.jsonl", entry(status="paid"), entry(key=K2, status="paid"))
    sidecar(tmp_path, "a_0.png", batch_sidecar(K1))
    sidecar(tmp_path, "c_0.png", batch_sidecar("3" * 32))
    restore, reports = Restorer(), list[str]()
    restore_from(restore, tmp_path, tmp_path / "manifest.jsonl", reports.append, damaged)
    assert restore.calls == 3
    assert {key: row["state"] for key, row in restore.rows.items()} == {
        K1: "failed",  # the database, before the manifest and the sidecar
        K2: "paid",  # the manifest, before nothing
        "3" * 32: "saved",
    }
    assert reports == [
        "recovered 1 request(s) from ledger.sqlite3.damaged-x",
        "recovered 1 request(s) from manifest.jsonl",
        "recovered 1 request(s) from image sidecars",
    ]


def test_without_a_damaged_file_or_a_manifest_only_the_sidecars_are_read(tmp_path: Path) -> None:
    sidecar(tmp_path, "a_0.png", batch_sidecar())
    restore, reports = Restorer(), list[str]()
    restore_from(restore, tmp_path, tmp_path / "manifest.jsonl", reports.append, None)
    assert restore.calls == 1
    assert list(restore.rows) == [K1]
    assert reports == ["recovered 1 request(s) from image sidecars"]


def test_what_a_source_cannot_read_is_reported_through_restore_from(tmp_path: Path) -> None:
    manifest(tmp_path / "manifest.jsonl", "[1]")
    sidecar(tmp_path, "a_0.png", {"batch": {"key": 5}, "request": BODY})
    restore, reports = Restorer(), list[str]()
    restore_from(restore, tmp_path, tmp_path / "manifest.jsonl", reports.append, None)
    assert reports == [
        "manifest.jsonl line 1: cannot be read (not an object); skipped",
        "a_0.png.json: cannot be read (no batch key or request); skipped",
    ]


def test_a_source_that_adds_nothing_is_not_reported(tmp_path: Path) -> None:
    manifest(tmp_path / "manifest.jsonl", entry())
    sidecar(tmp_path, "a_0.png", batch_sidecar())  # the same request: nothing new
    restore, reports = Restorer(), list[str]()
    restore_from(restore, tmp_path, tmp_path / "manifest.jsonl", reports.append, None)
    assert restore.calls == 2
    assert reports == ["recovered 1 request(s) from manifest.jsonl"]


# --- JSON nested past Python's recursion limit: one record lost, never the whole reading ------

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_row_nested_too_deeply_is_reported_and_the_others_are_kept(tmp_path: Path) -> None:
    path = database(tmp_path / "db", [{"key": K1, "images": DEEP}, {"key": K2}])
    reports: list[str] = []
    assert [row["key"] for row in _database_rows(path, reports.append)] == [K2]
    assert reports == [f"db: request {K1} is garbled; skipped"]


def test_a_manifest_line_nested_too_deeply_is_reported_by_position(tmp_path: Path) -> None:
    path = manifest(tmp_path / "manifest.jsonl", DEEP, entry(key=K2))
    reports: list[str] = []
    assert [row["key"] for row in _manifest_rows(path, reports.append)] == [K2]
    assert reports == ["manifest.jsonl line 1: cannot be read (nested too deeply); skipped"]


def test_a_sidecar_nested_too_deeply_is_reported_by_name(tmp_path: Path) -> None:
    sidecar(tmp_path, "a", DEEP)
    sidecar(tmp_path, "b", batch_sidecar())
    reports: list[str] = []
    assert [row["key"] for row in _sidecar_rows(tmp_path, reports.append)] == [K1]
    assert reports == ["a.json: cannot be read (nested too deeply); skipped"]
