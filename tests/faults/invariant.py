"""The money invariant, once, as code: nothing is paid twice silently, and nothing paid for is lost.

It reads a run's history: what the reference server saw arrive, bill and deliver during each run
(`Window`), what is on disk at the end (`Disk`: saved images and their sidecars, the batch's
ledger, journal and manifest, `generate`'s call records), what each command printed, and what the
library delivered (`Delivered`: results, on_result calls, the exception raised). It fails when:

1. a request was sent more often than once plus the times the user explicitly asked for a resend
   (`--resend-unknown`, `--regenerate-expired`);
2. a billed task is neither
   - saved: every image of it on disk, whole, beside a sidecar naming its task id;
   - recorded: the ledger (its journal and manifest count) or a call record holds its task id and
     every link, or, if no surviving client ever heard its answer, holds its request as possibly
     billed (or counts, in `sends`, every time the request went out: a resend the user asked
     for replaces the record of the send before it, not its count);
   - nor shown: printed (stderr or stdout of the run it was billed in, task id and every link;
     for an answer nobody heard, a line of any run saying its request, by seed, may have been
     billed),
     or delivered by the library (a result, an on_result call or the raised error carrying its
     generation; a "possibly billed" error for its request when no answer was heard).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from novita_flux import BatchResult, Generation
from novita_flux._identity import canonical
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, incomplete, sniff
from novita_flux.testing import ReferenceServer

RESEND_FLAGS = ("--resend-unknown", "--regenerate-expired")


@attrs.frozen
class Window:
    """What the server saw between two moments: requests arrived, tasks billed, answers heard."""

    arrived: tuple[Any, ...]
    billed: tuple[tuple[str, dict[str, Any]], ...]
    delivered: frozenset[str]

    @classmethod
    def since(cls, server: ReferenceServer, mark: tuple[int, int, int]) -> Window:
        faults = server.faults
        arrived, billed, delivered = mark
        return cls(
            tuple(faults.arrived[arrived:]),
            tuple(faults.billed[billed:]),
            frozenset(faults.delivered[delivered:]),
        )

    @staticmethod
    def mark(server: ReferenceServer) -> tuple[int, int, int]:
        faults = server.faults
        return len(faults.arrived), len(faults.billed), len(faults.delivered)


@attrs.frozen
class Run:
    """One command (or library call) and what the server saw while it ran.

    `abrupt`: the process stopped without a chance to record what it heard (SIGKILL, or the
    second signal that leaves at once); an answer delivered to it may be known only as "possibly
    billed" afterwards."""

    argv: tuple[str, ...]
    window: Window
    status: int | None = None
    stdout: str = ""
    stderr: str = ""
    abrupt: bool = False

    @property
    def asked_to_resend(self) -> bool:
        return any(flag in self.argv for flag in RESEND_FLAGS)

    @property
    def printed(self) -> str:
        return self.stdout + "\n" + self.stderr


@attrs.frozen
class Delivered:
    """What the library handed its caller: the returned value(s), every on_result call, and the
    exception that ended the call (None when it returned)."""

    returned: tuple[Any, ...] = ()
    reported: tuple[BatchResult, ...] = ()
    raised: BaseException | None = None


@attrs.frozen
class Record:
    """A request as some file on disk holds it."""

    source: str
    body: dict[str, Any]
    state: str
    task_id: str | None
    links: int
    sends: int = 0


@attrs.frozen
class Disk:
    saved: Counter[str]  # task id -> images saved whole beside a sidecar naming it
    records: tuple[Record, ...]
    rows_per_body: Counter[str]  # canonical body -> requests of the ledger asking for it

    @classmethod
    def read(cls, directory: Path) -> Disk:
        saved: Counter[str] = Counter()
        for sidecar in sorted(directory.glob("*.json")) if directory.is_dir() else ():
            data = _json_file(sidecar)
            image = sidecar.with_suffix("")
            if isinstance(data, dict) and isinstance(data.get("task_id"), str) and _whole(image):
                saved[data["task_id"]] += 1
        records = [
            *_ledger_records(directory / "ledger.sqlite3"),
            *_jsonl_records(directory / "ledger.journal.jsonl", "journal"),
            *_jsonl_records(directory / "manifest.jsonl", "manifest"),
            *_call_records(directory),
        ]
        rows = Counter(canonical(record.body) for record in records if record.source == "ledger")
        return cls(saved, tuple(records), rows)


def violations(
    runs: Sequence[Run],
    directory: Path | None = None,
    delivered: Sequence[Delivered] = (),
    *,
    allowed: int | None = None,
) -> list[str]:
    """Every way the history breaks the money invariant, one line each; [] when it holds.

    `allowed`: how many times each request may be sent, when the caller knows better than
    "once, plus once per run that asked to resend" (each `generate` run is a new ask)."""
    disk = Disk.read(directory) if directory is not None else Disk(Counter(), (), Counter())
    problems: list[str] = []
    if allowed is None:
        allowed = 1 + sum(run.asked_to_resend for run in runs)
    sent: Counter[str] = Counter()
    for run in runs:
        sent.update(canonical(body) for body in run.window.arrived if isinstance(body, dict))
    for body, count in sent.items():
        copies = max(disk.rows_per_body[body], 1)
        if count > allowed * copies:
            problems.append(
                f"sent {count} times, allowed {allowed * copies}: {_short(json.loads(body))}"
            )
    billed = Counter(canonical(body) for run in runs for _, body in run.window.billed)
    for number, run in enumerate(runs, start=1):
        for task_id, body in run.window.billed:
            if not _accounted(task_id, body, run, runs, disk, delivered, billed[canonical(body)]):
                heard = "heard" if task_id in run.window.delivered else "never heard"
                problems.append(
                    f"run {number} ({' '.join(run.argv) or 'library'}): task {task_id} was billed "
                    f"({heard} by the client) and is neither saved, recorded nor shown: "
                    f"{_short(body)}"
                )
    return problems


def _accounted(
    task_id: str,
    body: dict[str, Any],
    run: Run,
    runs: Sequence[Run],
    disk: Disk,
    delivered: Sequence[Delivered],
    times_billed: int,
) -> bool:
    images = int(body["image_num"])
    if disk.saved[task_id] >= images:
        return True
    if any(r.task_id == task_id and r.links >= images for r in disk.records):
        return True
    if _shown(task_id, images, run.printed):
        return True
    for outcome in delivered:
        if any(generation.task_id == task_id for generation in _generations(outcome)):
            return True
    # Nobody who survived heard the answer: its request, marked possibly billed, is all there is.
    heard = task_id in run.window.delivered and not run.abrupt
    if heard:
        return False
    same = canonical(body)
    kept = [r for r in disk.records if canonical(r.body) == same]
    if any(r.state in ("unknown", "sending") for r in kept):
        return True
    if any(r.sends >= times_billed for r in kept):
        return True
    if any(_warned(later.printed, body) for later in runs):
        return True
    return any(_doubted(outcome, body) for outcome in delivered)


def _warned(text: str, body: dict[str, Any]) -> bool:
    """A line told the user this request (named by its seed) may have been billed."""
    seed = f"seed {body.get('seed')},"
    return any("may have been billed" in line and seed in line for line in text.splitlines())


def _shown(task_id: str, images: int, text: str) -> bool:
    """The task id and a link to each of its images were printed (the reference server's links
    are `/images/<task>/<index>.<type>?...`)."""
    return all(f"/images/{task_id}/{index}." in text for index in range(images))


def _generations(outcome: Delivered) -> Iterator[Generation]:
    for value in outcome.returned:
        if isinstance(value, Generation):
            yield value
        elif isinstance(value, BatchResult) and value.generation is not None:
            yield value.generation
    for result in outcome.reported:
        if result.generation is not None:
            yield result.generation
    for error in _chain(outcome.raised):
        generation = getattr(error, "generation", None)
        if isinstance(generation, Generation):
            yield generation
        for result in getattr(error, "results", None) or ():
            if isinstance(result, BatchResult) and result.generation is not None:
                yield result.generation


def _doubted(outcome: Delivered, body: dict[str, Any]) -> bool:
    """The caller was told this request may have been billed without an answer."""
    prompt = body.get("prompt")
    results = list(outcome.reported) + [r for r in outcome.returned if isinstance(r, BatchResult)]
    for error in _chain(outcome.raised):
        results += [r for r in getattr(error, "results", None) or () if isinstance(r, BatchResult)]
    for result in results:
        if result.request.get("prompt") == prompt and getattr(result.error, "possibly_billed", 0):
            return True
    for error in _chain(outcome.raised):
        if getattr(error, "possibly_billed", False):
            return True
        said = getattr(error, "error", None)
        if getattr(said, "possibly_billed", False):
            return True
    return False


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _whole(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    kind = sniff(data[:HEAD_BYTES])
    if kind is None:
        return False
    return incomplete(kind, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)) is None


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _record(source: str, data: Any) -> Record | None:
    if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
        return None
    state = data.get("state", data.get("status"))
    images = data.get("images")
    links = sum(isinstance(i, dict) and isinstance(i.get("url"), str) for i in images or [])
    task_id = data.get("task_id")
    sends = data.get("sends")
    return Record(
        source,
        data["body"],
        str(state),
        task_id if isinstance(task_id, str) else None,
        links,
        sends if isinstance(sends, int) else 0,
    )


def _ledger_records(path: Path) -> Iterator[Record]:
    if not path.exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            found = db.execute(
                "SELECT body, state, task_id, images, sends FROM requests"
            ).fetchall()
    except sqlite3.Error:
        return
    for body, state, task_id, images, sends in found:
        with contextlib.suppress(TypeError, ValueError):
            record = _record(
                "ledger",
                {"body": json.loads(body), "state": state, "task_id": task_id,
                 "images": json.loads(images), "sends": sends},
            )  # fmt: skip
            if record is not None:
                yield record


def _jsonl_records(path: Path, source: str) -> Iterator[Record]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return
    for line in lines:
        with contextlib.suppress(UnicodeDecodeError, ValueError):
            record = _record(source, json.loads(line))
            if record is not None:
                yield record


def _call_records(directory: Path) -> Iterator[Record]:
    for path in sorted(directory.glob(".novita-flux-call-*.json")) if directory.is_dir() else ():
        data = _json_file(path)
        if isinstance(data, dict):
            state = "paid" if data.get("task_id") else "unknown"
            record = _record("call", {**data, "state": state})
            if record is not None:
                yield record


def _short(body: Any) -> str:
    text = json.dumps(body, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 160 else text[:157] + "..."
