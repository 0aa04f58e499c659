"""The batch ledger: `DIR/ledger.sqlite3`, one row per distinct request, every state change one
durable transaction.

Why SQLite (the standard library's sqlite3) rather than an append-only journal: a batch needs
exactly what a small database gives and a journal would have to rebuild by hand. A state change
touches one row in O(log n), whatever the batch's size (the old manifest was rewritten whole on
every change: quadratic). A commit in WAL mode with synchronous=FULL is atomic and on disk
before the next step, so "intent before the send" is one UPDATE. Resuming is a query by state,
not a replay; a crash mid-write leaves the last committed state, never a torn line to repair;
and any sqlite3 tool can read it. A journal would need its own compaction, torn-tail recovery
and indexing to offer the same.

A request moves `planned -> sending -> paid -> saved`; the states and the one table of the steps
between them are in _states, and every transition below is a step of that table: its UPDATE
names the states the step leaves from, and a request in another state is refused (IllegalStep).

A request answered with another number of images than its `image_num` (a short answer, or a long
one) is paid and saved like any other, and says so: its `error` holds a `ShortAnswer` note, kept
once its images are saved (and so in the journal and the manifest), and `short_answers` counts
them.

Every step is also appended to the journal (_journal) before the batch goes on, so that no one
damaged file forgets a request that may have been billed. When the records disagree, the one
furthest along wins: more sends first, then planned < sending < failed < unknown < paid < saved,
then more files saved (`progress`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import attrs

from novita_flux._errors import APIStatusError
from novita_flux._faultpoints import reach
from novita_flux._images import write_atomically
from novita_flux._journal import JOURNAL_NAME, Journal, Reporter
from novita_flux._journal import stamp as _stamp
from novita_flux._jsonstrings import LONE_SURROGATE as _LONE_SURROGATE
from novita_flux._models import GeneratedImage, entry_of, image_of
from novita_flux._recovery import restore_from
from novita_flux._row import COLUMNS, JSON_COLUMNS, RECORD_COLUMNS, Row, qualified
from novita_flux._states import INVALID, RANK, TO_DOWNLOAD, TO_PAY, IllegalStep, State, Step
from novita_flux._states import sources as step_sources
from novita_flux._states import target as step_target

LEDGER_NAME: Final = "ledger.sqlite3"
MANIFEST_NAME: Final = "manifest.jsonl"
SCHEMA_VERSION: Final = "1"

# The states' old names, kept for the modules and tests that import them from here.
SHORT_ANSWER: Final = "ShortAnswer"  # the `error` type of an answer short of (or past) image_num
STATES: Final = tuple(State)
# What reading a garbled row raises (RecursionError: JSON nested past Python's recursion limit).
_UNREADABLE: Final = (TypeError, ValueError, ArithmeticError, RecursionError)

_SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,            -- the line's object, as read (JSON)
    body TEXT NOT NULL,               -- the exact body sent, seed included (JSON)
    seed INTEGER NOT NULL,
    image_num INTEGER NOT NULL,
    cost TEXT NOT NULL,               -- USD, exact
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s.value) for s in State)})),
    task_id TEXT,
    images TEXT NOT NULL DEFAULT '[]',
    files TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    sends INTEGER NOT NULL DEFAULT 0, -- times it went on the wire; each may have been billed
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lines (    -- the input as the current run read it
    line INTEGER PRIMARY KEY,
    key TEXT,                         -- NULL for a line that is not a valid request
    request TEXT,
    error TEXT
);
"""


@attrs.frozen
class PlannedLine:
    """A line read from the input: a request to record, or why it is not one."""

    line: int
    key: str | None
    request: Any
    body: dict[str, Any] | None = None
    cost: Decimal = Decimal(0)
    error: str | None = None


class Ledger:
    """The ledger of one batch directory. Safe to use from several threads (one connection,
    one lock: SQLite serialises writers anyway)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection
        self._lock = threading.Lock()
        self.journal = Journal(path.with_name(JOURNAL_NAME))
        # Set when a step reached the journal but not the ledger: the journal is then not
        # emptied at the end of the run, so that the next one brings the step in.
        self._journal_ahead = False

    @classmethod
    def open(cls, directory: Path, report: Reporter) -> Ledger:
        """The directory's ledger, brought up to date with its journal. One that is damaged,
        empty or not a ledger is set aside and rebuilt from everything else that says what was
        paid: what it still holds, the journal, the last exported manifest and the images'
        sidecars (see _recovery)."""
        path = directory / LEDGER_NAME
        manifest = directory / MANIFEST_NAME
        damaged: Path | None = None
        try:
            existed = path.exists()
            if existed and path.stat().st_size == 0:
                # SQLite opens an empty file as an empty database: it would forget everything.
                raise sqlite3.DatabaseError("the file is empty (0 bytes)")
            ledger = cls(path, _connect(path))
            ours = ledger._check()
            if existed and not ours:
                raise sqlite3.DatabaseError("it holds no ledger")
            garbled = ledger._set_aside_garbled(report)
        except sqlite3.DatabaseError as error:
            with contextlib.suppress(UnboundLocalError, sqlite3.Error):
                ledger._db.close()
            damaged = _set_aside(path)
            report(f"{path.name} is damaged ({error}); kept as {damaged.name} and rebuilt")
            ledger = cls(path, _connect(path))
            ledger._check()
            existed, garbled = False, 0
        if not existed or garbled:  # rebuilt, new beside an older run's records, or holes in it
            restore_from(
                functools.partial(ledger.restore, report=report),
                directory,
                manifest,
                report,
                damaged=damaged,
            )
        # The journal last, and always: it holds the latest steps, which a lost -wal may lack.
        added = ledger.restore(ledger.journal.records(report), report)
        if added:
            report(f"brought {added} request(s) up to date from {JOURNAL_NAME}")
        return ledger

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self.journal.close()

    def release_journal(self) -> None:
        """Empty the journal once everything in it is held twice elsewhere: call it after the
        manifest is exported. The ledger is checkpointed first, so that nothing lives only in
        its -wal."""
        with self._lock:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy == 0 and not self._journal_ahead:
            self.journal.clear()

    # --- planning ---

    def begin_planning(self) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM lines")

    def plan(self, lines: Sequence[PlannedLine]) -> None:
        """Record a chunk of input lines in one transaction; a request already known keeps its
        row (state, seed and all): only its line number is updated."""
        now = _now()
        with self._transaction() as db:
            for item in lines:
                if item.key is not None and item.body is not None:
                    _insert(
                        db,
                        "INSERT OR IGNORE",
                        key=item.key,
                        request=_json(item.request),
                        body=_json(item.body),
                        seed=item.body["seed"],
                        image_num=item.body["image_num"],
                        cost=str(item.cost),
                        state=State.PLANNED,
                        updated=now,
                    )
                db.execute(
                    "INSERT OR REPLACE INTO lines (line, key, request, error) VALUES (?, ?, ?, ?)",
                    (item.line, item.key, _json(item.request), _text(item.error)),
                )

    def restore(self, rows: Iterable[dict[str, Any]], report: Reporter | None = None) -> int:
        """Bring in recovered requests: each one the ledger does not hold, or holds at an earlier
        step (see `progress`); how many were brought in. A record that would not read back as
        a row (the checks that open makes of every row) is skipped, so that it cannot stop a
        later step, and what the ledger held of that request stays as it was; the record is
        kept whole in `ledger.sqlite3.unread-<time>.jsonl` and reported with its task id, since
        its source may not outlive the run (the journal is emptied at a clean end, the
        manifest written anew from the ledger)."""
        changed = 0
        unread: list[tuple[str, dict[str, Any]]] = []
        with self._transaction() as db:
            for row in rows:
                db.execute("SAVEPOINT restoring")
                try:
                    if not self._restored(db, row):
                        continue
                    changed += 1
                except (KeyError, TypeError, ValueError, ArithmeticError) as error:
                    db.execute("ROLLBACK TO restoring")
                    unread.append(
                        (f"no {error}" if isinstance(error, KeyError) else str(error), row)
                    )
                finally:
                    db.execute("RELEASE restoring")
        if unread:
            aside = self.path.with_name(f"{self.path.name}.unread-{_stamp()}.jsonl")
            kept = (json.dumps({"why": why, "record": row}, default=repr) for why, row in unread)
            write_atomically(aside, (f"{line}\n".encode() for line in kept))
            for why, row in unread:
                task = f" (task {row['task_id']})" if row.get("task_id") else ""  # what was paid
                if report is not None:
                    report(f"a recovered record of request {row.get('key')}{task} could not be "
                           f"read ({why}); skipped, and kept in {aside.name}")  # fmt: skip
        return changed

    def _restored(self, db: sqlite3.Connection, row: dict[str, Any]) -> bool:
        """Write one recovered request if it is further along than what is held; whether it
        was. Raises if the row it makes would not read back."""
        held = db.execute(
            "SELECT sends, state, files FROM requests WHERE key = ?", (row["key"],)
        ).fetchone()
        if held is not None and progress(row) <= _held_progress(held):
            return False
        _insert(
            db,
            "INSERT OR REPLACE",
            key=row["key"],
            request=_json(row.get("request")),
            body=_json(row["body"]),
            seed=row["body"]["seed"],
            image_num=row["body"]["image_num"],
            cost=str(row.get("cost") or 0),
            state=row["state"],
            task_id=row.get("task_id"),
            images=_json(row.get("images") or []),
            files=_json(row.get("files") or []),
            error=_json(row.get("error")) if row.get("error") else None,
            sends=row.get("sends", 0),
            updated=_now(),
        )
        query = f"SELECT {_COLUMNS} FROM requests WHERE key = ?"  # noqa: S608 - names only
        _decoded(db.execute(query, (row["key"],)).fetchone())
        return True

    def seed_of(self, key: str) -> int | None:
        with self._lock:
            found = self._db.execute("SELECT seed FROM requests WHERE key = ?", (key,)).fetchone()
        return None if found is None else int(found[0])

    # --- resuming ---

    def settle_interrupted(self) -> int:
        """Requests found on the wire belong to a process that died: possibly billed."""
        error = {
            "type": "Interrupted",
            "message": "the process stopped while this request was in flight; it may have been "
            "billed",
        }
        with self._transaction() as db:
            allowed = step_sources(Step.INTERRUPTED)
            marks = ", ".join("?" for _ in allowed)
            cursor = db.execute(
                f"UPDATE requests SET state = ?, error = ?, updated = ? WHERE state IN ({marks})",  # noqa: S608 - only placeholders are formatted in
                (step_target(Step.INTERRUPTED), _json(error), _now(), *allowed),
            )
            return cursor.rowcount

    def rows(
        self, states: Iterable[str], chunk: int = 500, report: Reporter | None = None
    ) -> Iterator[Row]:
        """The current run's requests in these states, in input order, a chunk at a time (a
        100,000-line batch is never held in memory). A row whose fields no longer decode is
        reported and left as it is: never sent, never forgotten."""
        wanted = tuple(states)
        marks = ", ".join("?" for _ in wanted)
        after = 0
        while True:
            with self._lock:
                found = self._db.execute(
                    f"SELECT lines.line, {qualified(COLUMNS)} FROM lines JOIN requests "  # noqa: S608 - column names and placeholders only
                    f"ON lines.key = requests.key WHERE lines.line > ? AND state IN ({marks}) "
                    "ORDER BY lines.line LIMIT ?",
                    (after, *wanted, chunk),
                ).fetchall()
            if not found:
                return
            for record in found:
                try:
                    row = Row.read(record)
                except _UNREADABLE as error:
                    if report is not None:
                        report(f"{LEDGER_NAME}: the request of line {record[0]} is garbled "
                               f"({error}); left as it is")  # fmt: skip
                    continue
                yield row
            after = found[-1][0]

    def paid_outside_input(self) -> Iterator[Row]:
        """Requests paid for by earlier runs, their images not all saved, whose lines have left
        the input (edited or deleted): downloading what they paid for still costs nothing, and
        their links expire."""
        with self._lock:
            found = self._db.execute(_PAID_OUTSIDE_INPUT, (State.PAID,)).fetchall()
        for record in found:
            with contextlib.suppress(*_UNREADABLE):  # garbled: kept
                yield Row.read(record)

    def totals(self, states: Iterable[str]) -> tuple[int, int, Decimal]:
        """(requests, images, cost) of the current run's requests in these states."""
        requests = images = 0
        cost = Decimal(0)
        for row in self.rows(states):
            requests += 1
            # Still to pay for: every image it asks for, and its price; paid: what is unsaved.
            images += int(row.body["image_num"]) if row.state in TO_PAY else 0
            images += len(row.missing_images()) if row.state in TO_DOWNLOAD else 0
            cost += row.cost if row.state in TO_PAY else 0
        return requests, images, cost

    def short_answers(self) -> int:
        """How many of the current run's requests were answered with another number of images
        than they paid for."""
        with self._lock:
            (found,) = self._db.execute(
                "SELECT COUNT(*) FROM lines JOIN requests ON lines.key = requests.key "
                "WHERE state IN (?, ?) AND json_valid(requests.error) "
                "AND json_extract(requests.error, '$.type') = ?",
                (State.PAID, State.SAVED, SHORT_ANSWER),
            ).fetchone()
        return int(found)

    def counts(self) -> Counter[str]:
        """How many lines of the current run are in each state (`invalid` included)."""
        with self._lock:
            found = self._db.execute(
                "SELECT COALESCE(state, ?), COUNT(*) FROM lines LEFT JOIN requests "
                "ON lines.key = requests.key GROUP BY 1",
                (INVALID,),
            ).fetchall()
        return Counter(dict(found))

    # --- the transitions, each durable before the next step ---

    def sending(self, key: str, *, again: bool = False) -> bool:
        """Record the intent to send; False if the request is not sendable any more. `again`
        allows a paid request to be sent once more (its links expired before they were saved)."""
        allowed = step_sources(Step.SEND, Step.SEND_AGAIN) if again else step_sources(Step.SEND)
        marks = ", ".join("?" for _ in allowed)
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE requests SET state = ?, sends = sends + 1, error = NULL, images = '[]', "  # noqa: S608 - only placeholders are formatted in
                f"files = '[]', updated = ? WHERE key = ? AND state IN ({marks})",
                (step_target(Step.SEND), _now(), key, *allowed),
            )
            if cursor.rowcount != 1:
                return False
            # On disk twice before the request may leave: if either write fails, it never does.
            self.journal.append(_snapshot(db, key))
            return True

    def paid(
        self,
        key: str,
        task_id: str | None,
        images: Sequence[GeneratedImage],
        error: dict[str, Any] | None = None,
    ) -> None:
        self._set(
            key, Step.ANSWERED, task_id=task_id, images=[entry_of(i) for i in images], error=error
        )

    def failed(self, key: str, error: dict[str, Any]) -> None:
        self._set(key, Step.REFUSED, error=error)

    def unknown(self, key: str, error: dict[str, Any]) -> None:
        self._set(key, Step.UNANSWERED, error=error)

    def saved(self, key: str, files: Sequence[str], note: dict[str, Any] | None = None) -> None:
        """Every image saved; `note` is what stays said of the answer (a short answer)."""
        self._set(key, Step.SAVED, files=list(files), error=note)

    def partly_saved(self, key: str, files: Sequence[str], error: dict[str, Any]) -> None:
        self._set(key, Step.SAVED_IN_PART, files=list(files), error=error)

    def lost_files(self, key: str, kept: Sequence[str]) -> None:
        """A saved request some of whose files are gone or damaged: paid again, so that the
        next downloads fetch what is missing (a download costs nothing)."""
        error = {"type": "FileLost", "message": "a saved image was missing or damaged"}
        self._set(key, Step.FILES_LOST, files=list(kept), error=error)

    # --- for people and scripts ---

    def export_manifest(self, path: Path) -> None:
        """Write `manifest.jsonl` atomically: one line per input line, in input order, then one
        (`"line": null`) per request that is no longer in the input but was sent: it may have
        been paid for, and the manifest is what recovery reads when the ledger is lost."""

        def chunks() -> Iterator[bytes]:
            for number, query in enumerate(_MANIFEST_QUERIES):
                after = 0
                while True:
                    with self._lock:
                        found = self._db.execute(query, (after,)).fetchall()
                    if not found:
                        break
                    lines = (_manifest_line(record, in_input=number == 0) for record in found)
                    yield "".join(lines).encode()
                    after = found[-1][0]

        write_atomically(path, chunks(), ready=lambda: reach("manifest.written"))

    # --- plumbing ---

    def _check(self) -> bool:
        """Check the database and give it the ledger's tables; whether it held a ledger."""
        with self._lock:
            (verdict,) = self._db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                # SQLite's verdict spans lines ("*** in database main ***\n..."); a report is one.
                raise sqlite3.DatabaseError("quick_check: " + "; ".join(verdict.splitlines()))
            ours = self._db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
            ).fetchone()
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
        return ours is not None

    def _set_aside_garbled(self, report: Reporter) -> int:
        """Move rows whose fields no longer decode (a damaged page that the database's own
        check cannot see) to `ledger.sqlite3.garbled-<time>.jsonl`, so that the other records
        can restore them; how many there were."""
        garbled: list[tuple[str, Sequence[Any]]] = []
        with self._lock:
            # As bytes: a garbled text column must not fail the whole query.
            for record in self._db.execute(f"SELECT {_COLUMNS} FROM requests"):  # noqa: S608
                try:
                    _decoded(record)
                except ValueError as error:
                    garbled.append((str(error), record))
        if not garbled:
            return 0
        aside = self.path.with_name(f"{self.path.name}.garbled-{_stamp()}.jsonl")
        # Each row by the repr of its rowid and columns, with why it could not be read.
        kept = ({"why": why, "row": list(map(repr, r))} for why, r in garbled)
        write_atomically(aside, (f"{json.dumps(line)}\n".encode() for line in kept))
        with self._transaction() as db:
            db.executemany("DELETE FROM requests WHERE rowid = ?", [(r[0],) for _, r in garbled])
        whys = "; ".join(sorted({why for why, _ in garbled}))
        report(
            f"{self.path.name}: {len(garbled)} request(s) could not be read ({whys}); kept in "
            f"{aside.name}, restored from the other records where they can be"
        )
        return len(garbled)

    def _set(self, key: str, step: Step, **fields: Any) -> None:
        """Take the request one step of the table (_states), with these fields; IllegalStep,
        and nothing written, if its state is not one the step leaves from."""
        columns = {
            # JSON columns: an empty list is '[]' like any other; only None stays NULL.
            name: _json(value) if name in JSON_COLUMNS and value is not None else value
            for name, value in fields.items()
        } | {"state": step_target(step)}
        assignments = ", ".join(f"{name} = ?" for name in columns)
        allowed = step_sources(step)
        marks = ", ".join("?" for _ in allowed)
        snapshot: dict[str, Any] | None = None
        try:
            with self._transaction() as db:
                cursor = db.execute(
                    f"UPDATE requests SET {assignments}, updated = ? "  # noqa: S608 - names from this module
                    f"WHERE key = ? AND state IN ({marks})",
                    (*columns.values(), _now(), key, *allowed),
                )
                if cursor.rowcount != 1:
                    held = db.execute("SELECT state FROM requests WHERE key = ?", (key,)).fetchone()
                    raise IllegalStep(
                        f"request {key} is {held[0] if held else 'not in the ledger'}: the step "
                        f"'{step}' leaves only from {', '.join(allowed)}"
                    )
                snapshot = _snapshot(db, key)
        except (sqlite3.Error, OSError):
            # The ledger could not take the step (a full disk, a lost file): the journal is
            # another file, and may still hold it, so that the next run knows what was paid.
            if snapshot is not None:
                with contextlib.suppress(OSError):
                    self.journal.append(snapshot)
                    self._journal_ahead = True  # it holds a step the ledger lacks: keep it
            raise
        # After the commit: what is recorded stays recorded even if the journal cannot take it.
        self.journal.append(snapshot)

    class _Transaction:
        def __init__(self, ledger: Ledger) -> None:
            self.ledger = ledger

        def __enter__(self) -> sqlite3.Connection:
            self.ledger._lock.acquire()
            try:
                self.ledger._db.execute("BEGIN IMMEDIATE")
            except BaseException:
                # No __exit__ follows a failed __enter__: the lock would stay taken for ever.
                self.ledger._lock.release()
                raise
            return self.ledger._db

        def __exit__(self, kind: object, *rest: object) -> None:
            db = self.ledger._db
            try:
                if kind is not None:
                    db.execute("ROLLBACK")
                    return
                try:
                    reach("write.ledger")
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:  # a failed COMMIT leaves the transaction open
                        db.execute("ROLLBACK")
                    raise
            finally:
                self.ledger._lock.release()

    def _transaction(self) -> Ledger._Transaction:
        return Ledger._Transaction(self)


def short_answer(body: dict[str, Any], images: Sequence[object]) -> dict[str, Any] | None:
    """The note a request keeps when its answer held another number of images than it paid
    for (`image_num`); None when it held them all."""
    paid_for = int(body["image_num"])
    if len(images) == paid_for:
        return None
    return {
        "type": SHORT_ANSWER,
        "message": f"the API answered {len(images)} image(s) for the {paid_for} paid for: a "
        "contract deviation; every image it held is kept",
        "images_paid_for": paid_for,
        "images_answered": len(images),
        "possibly_billed": True,
    }


def describe_error(error: BaseException) -> dict[str, Any]:
    """What the ledger and the manifest keep of an error (never the API key: errors hold none)."""
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        described |= {
            "status_code": error.status_code,
            "reason": error.reason,
            "task_id": error.task_id,
        }
    if getattr(error, "possibly_billed", False):
        described["possibly_billed"] = True
    field = getattr(error, "field", None)
    if field is not None:
        described["field"] = field
    return described


def progress(row: dict[str, Any]) -> tuple[int, int, int]:
    """How far along a recorded request is: (sends, step, files saved); the larger is later."""
    files = row.get("files")
    return (
        int(row.get("sends") or 0),
        RANK.get(row.get("state", State.PLANNED), 0),
        len(files) if isinstance(files, list) else 0,
    )


def _held_progress(held: Sequence[Any]) -> tuple[int, int, int]:
    sends, state, files = held
    try:
        saved = json.loads(files)
    except (TypeError, ValueError):
        saved = []
    return progress({"sends": sends, "state": state, "files": saved})


def _snapshot(db: sqlite3.Connection, key: str) -> dict[str, Any]:
    """The request's whole row as the journal keeps it."""
    record = db.execute(
        f"SELECT {', '.join(RECORD_COLUMNS)} FROM requests WHERE key = ?",  # noqa: S608
        (key,),
    ).fetchone()
    row = dict(zip(RECORD_COLUMNS, record, strict=True))
    for name in JSON_COLUMNS:
        row[name] = json.loads(row[name]) if name != "error" or row[name] else None
    return row


# A manifest line's columns after the line's own (line, key, request, error).
_MANIFEST_COLUMNS: Final = (*(name for name in COLUMNS if name not in ("key", "request")), "sends")

# The requests that no line of the current run names: their lines were edited or deleted.
_NOT_IN_INPUT: Final = "key NOT IN (SELECT key FROM lines WHERE key IS NOT NULL)"
_PAID_OUTSIDE_INPUT: Final = (
    f"SELECT NULL, {', '.join(COLUMNS)} FROM requests "  # noqa: S608 - column names only
    f"WHERE state = ? AND {_NOT_IN_INPUT} ORDER BY rowid"
)
# The manifest's two parts, a chunk after a given line (then rowid) at a time: every line of the
# input (an invalid one has no request row), then every request sent outside it.
_MANIFEST_QUERIES: Final = (
    "SELECT lines.line, lines.key, lines.request, lines.error, "  # noqa: S608 - column names only
    f"{qualified(_MANIFEST_COLUMNS)} FROM lines LEFT JOIN requests "
    "ON lines.key = requests.key WHERE lines.line > ? ORDER BY lines.line LIMIT 1000",
    f"SELECT rowid, key, request, NULL, {', '.join(_MANIFEST_COLUMNS)} FROM requests "  # noqa: S608 - column names only
    f"WHERE rowid > ? AND sends > 0 AND {_NOT_IN_INPUT} ORDER BY rowid LIMIT 1000",
)


def _manifest_line(record: Sequence[Any], *, in_input: bool) -> str:
    line, key, request, line_error, *values = record
    held = dict(zip(_MANIFEST_COLUMNS, values, strict=True))
    entry: dict[str, Any] = {
        "line": line if in_input else None,
        "key": key,
        "status": held["state"] or INVALID,
        "request": json.loads(request) if request else None,
        "body": json.loads(held["body"]) if held["body"] else None,
        "seed": held["seed"],
        "task_id": held["task_id"],
        "cost": held["cost"],
        "files": json.loads(held["files"]) if held["files"] else [],
        "images": json.loads(held["images"]) if held["images"] else [],
        "error": json.loads(held["error"])
        if held["error"]
        else ({"message": line_error} if line_error else None),
        "sends": held["sends"] or 0,
    }
    # Unicode stays readable, but the line separators some readers split on are escaped.
    text = _json(entry, separators=(", ", ": ")).translate(_LINE_BREAKS)
    return text + "\n"


_LINE_BREAKS: Final = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


# Every connection's settings: a commit is on disk when it returns.
_PRAGMAS: Final = ("PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL")


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    for pragma in _PRAGMAS:
        connection.execute(pragma)
    return connection


# The text columns whose bytes must decode for a row to be read; the seed as it is when it is
# an integer, else as bytes (a garbled text must not fail the query).
_DECODED: Final = ("key", "state", "cost", "task_id", *JSON_COLUMNS)
_COLUMNS: Final = ", ".join(
    ["rowid", "CASE typeof(seed) WHEN 'integer' THEN seed ELSE CAST(seed AS BLOB) END"]
    + [f"CAST({name} AS BLOB)" for name in _DECODED]
)


def _decoded(record: Sequence[Any]) -> None:
    """Raise ValueError, naming the field, if a row's fields do not decode as what the ledger
    wrote: everything a Row and its images are read from later."""
    _, seed, *blobs = record
    text: dict[str, str | None] = {}
    for name, blob in zip(_DECODED, blobs, strict=True):
        try:
            text[name] = None if blob is None else bytes(blob).decode()
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not UTF-8") from None
    if text["key"] is None:
        raise ValueError("no key")
    if text["state"] not in STATES:
        raise ValueError("state is not one of the ledger's")
    if not isinstance(seed, int):
        raise ValueError("seed is not an integer")
    values = {name: _json_of(name, text[name]) for name in JSON_COLUMNS if name != "error"}
    body, images, files = values["body"], values["images"], values["files"]
    if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
        raise ValueError("body has no text prompt")
    if type(body.get("image_num")) is not int:
        raise ValueError("body has no image_num")
    if not isinstance(images, list) or not all(_is_image(entry) for entry in images):
        raise ValueError("images is not a list of images")
    if not isinstance(files, list) or not all(isinstance(name, str) for name in files):
        raise ValueError("files is not a list of file names")
    if text["error"] and not isinstance(_json_of("error", text["error"]), dict):
        raise ValueError("error is not an object")
    try:
        cost = Decimal(text["cost"] or "")
    except ArithmeticError:
        raise ValueError("cost is not an amount") from None
    # A price: finite, not negative, and small enough for the totals' arithmetic.
    if not cost.is_finite() or cost < 0 or cost.adjusted() > _LARGEST_COST_DIGITS:
        raise ValueError("cost is not an amount")


_LARGEST_COST_DIGITS: Final = 30


def _json_of(name: str, text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        raise ValueError(f"{name} is not JSON") from None
    except RecursionError:
        raise ValueError(f"{name} is nested too deeply") from None


def _is_image(entry: object) -> bool:
    """Whether a recorded image entry reads back as an image (see `_models.image_of`)."""
    if not isinstance(entry, dict):
        return False
    try:
        image = image_of(entry)
    except (KeyError, TypeError, ValueError, ArithmeticError):  # ArithmeticError: int(1e999)
        return False
    # An expiry is compared with the aware time now: a naive one could not be.
    return image.expires_at is None or image.expires_at.tzinfo is not None


def _set_aside(path: Path) -> Path:
    damaged = path.with_name(f"{path.name}.damaged-{_stamp()}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{path}{suffix}")
        if source.exists():
            os.replace(source, f"{damaged}{suffix}")
    return damaged


def _insert(db: sqlite3.Connection, verb: str, **columns: Any) -> None:
    """`verb INTO requests` of these columns, named once, by their keywords."""
    db.execute(
        f"{verb} INTO requests ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        tuple(columns.values()),
    )


def _json(value: Any, separators: tuple[str, str] = (",", ":")) -> str:
    """JSON text that UTF-8 can hold: Unicode stays readable, but a lone surrogate (from an
    input line's `\ud800` escape) stays an escape, as the input wrote it."""
    text = json.dumps(value, ensure_ascii=False, separators=separators)
    if _LONE_SURROGATE.search(text) is None:
        return text
    return json.dumps(value, separators=separators)


def _text(text: str | None) -> str | None:
    """A message for a TEXT column, any lone surrogate in it (a field named by an input line)
    written as a backslash escape."""
    return None if text is None else text.encode(errors="backslashreplace").decode()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
