"""Rebuilding a batch ledger so that nothing already paid for is forgotten.

When the ledger is damaged (or missing beside an older run's output), whatever still says what
was paid is read back: the rows the damaged database still yields, the last exported
`manifest.jsonl` (this version's or the manifest-only format before the ledger), and the `.json`
sidecar of every saved image (the ledger's journal is read by the ledger itself, every time it
opens). Where records disagree, the ledger keeps the one furthest along (`_ledger.progress`). A
record that cannot be read is reported with its position and skipped; it never stops the resume.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from novita_flux._errors import NovitaError
from novita_flux._identity import normalised, request_key
from novita_flux._journal import Reporter, parsed
from novita_flux._row import JSON_COLUMNS, RECORD_COLUMNS
from novita_flux._states import State, Step, target

Restore = Callable[[Iterable[dict[str, Any]]], int]  # insert rows not held yet; how many were new

# What a manifest's status means to the ledger; the manifest-only format had done/generated.
# One that was in flight when it was written is what a request interrupted on the wire becomes.
_STATES: dict[str, State] = {
    **{state.value: state for state in State},
    State.SENDING.value: target(Step.INTERRUPTED),
    "done": State.SAVED,
    "generated": State.PAID,
}


def restore_from(
    restore: Restore,
    directory: Path,
    manifest: Path,
    report: Reporter,
    damaged: Path | None,
) -> None:
    """Feed `restore` every request the other records hold, most trusted first."""
    sources: list[tuple[str, Iterator[dict[str, Any]]]] = []
    if damaged is not None:
        sources.append((damaged.name, _database_rows(damaged, report)))
    if manifest.exists():
        sources.append((manifest.name, _manifest_rows(manifest, report)))
    sources.append(("image sidecars", _sidecar_rows(directory, report)))
    for name, rows in sources:
        added = restore(rows)
        if added:
            report(f"recovered {added} request(s) from {name}")


def _database_rows(path: Path, report: Reporter) -> Iterator[dict[str, Any]]:
    """Every row a damaged database still yields, read a rowid range at a time so that one bad
    page costs only the rows on it."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        (last,) = connection.execute("SELECT MAX(rowid) FROM requests").fetchone()
    except sqlite3.DatabaseError as error:
        report(f"{path.name}: no request could be read ({error})")
        return
    for start in range(0, (last or 0) + 1, 64):
        try:
            found = connection.execute(
                f"SELECT {', '.join(RECORD_COLUMNS)} FROM requests "  # noqa: S608 - column names only
                "WHERE rowid BETWEEN ? AND ?",
                (start, start + 63),
            ).fetchall()
        except sqlite3.DatabaseError as error:
            report(f"{path.name}: rows {start} to {start + 63} could not be read ({error})")
            continue
        for record in found:
            row = dict(zip(RECORD_COLUMNS, record, strict=True))
            try:
                yield {
                    **row,
                    **{
                        name: parsed(row[name]) if name != "error" or row[name] else None
                        for name in JSON_COLUMNS
                    },
                    "state": _STATES.get(row["state"], State.UNKNOWN),
                }
            except (TypeError, ValueError):
                report(f"{path.name}: request {row['key']} is garbled; skipped")
    connection.close()


def _manifest_rows(path: Path, report: Reporter) -> Iterator[dict[str, Any]]:
    occurrences: Counter[str] = Counter()
    with path.open("rb") as lines:
        for position, raw in enumerate(lines, start=1):
            try:
                entry = parsed(raw.decode())
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                state = _STATES.get(entry.get("status", ""))
                body = entry.get("body")
                if state is None or not isinstance(body, dict):
                    continue  # an invalid line, or nothing was ever sent for it
                key = entry.get("key")
                request = entry.get("request")
                if not (isinstance(key, str) and len(key) >= 32):
                    # The manifest-only format keyed lines by position: key by content instead.
                    content = normalised(request if isinstance(request, dict) else body)
                    occurrences[request_key(content)] += 1
                    key = request_key(content, occurrences[request_key(content)])
                yield {
                    "key": key,
                    "request": request,
                    "body": body,
                    "cost": entry.get("cost"),
                    "state": state,
                    "task_id": entry.get("task_id"),
                    "images": entry.get("images") or [],
                    "files": entry.get("files") or [],
                    "error": entry.get("error"),
                    "sends": _count(entry.get("sends")),
                }
            except (
                UnicodeDecodeError,
                ValueError,
                TypeError,
                AttributeError,
                NovitaError,
            ) as error:
                report(f"{path.name} line {position}: cannot be read ({error}); skipped")


def _sidecar_rows(directory: Path, report: Reporter) -> Iterator[dict[str, Any]]:
    """Saved images, by the batch key their sidecars carry."""
    found: dict[str, dict[str, Any]] = {}
    for sidecar in sorted(directory.glob("*.json")):
        try:
            data = parsed(sidecar.read_text(encoding="utf-8"))
            batch = data.get("batch") if isinstance(data, dict) else None
            if not isinstance(batch, dict):
                continue  # not written by a batch
            key, body = batch["key"], data["request"]
            if not isinstance(key, str) or not isinstance(body, dict):
                raise ValueError("no batch key or request")
        except (OSError, UnicodeDecodeError, ValueError, KeyError) as error:
            report(f"{sidecar.name}: cannot be read ({error}); skipped")
            continue
        row = found.setdefault(
            key,
            {
                "key": key,
                "request": body,  # a sidecar keeps the body sent, not the line as written
                "body": body,
                "cost": data.get("cost_usd"),
                "state": State.SAVED,
                "task_id": data.get("task_id"),
                "files": [],
                "sends": 1,  # a saved image was sent for at least once
            },
        )
        row["files"].append(sidecar.name.removesuffix(".json"))
    yield from found.values()


def _count(value: Any) -> int:
    """A manifest's `sends` (absent before the journal came: 0, the earliest step)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
