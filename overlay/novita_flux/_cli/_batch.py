"""`novita-flux batch`: a JSONL file of requests, run at the API's pace, resumable, and never
paying twice.

Every line is checked, priced and recorded in the directory's ledger (its seed drawn and written)
before anything is sent; each request is marked `sending` before it goes on the wire, `paid` as
soon as its answer is read and `saved` once its images are on disk (see _ledger). A rerun skips
what is saved, downloads what is paid, sends what is planned or failed, and reports what may have
been billed without sending it again unless asked (`--resend-unknown`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from novita_flux._batch import ImagePacer, check_pace, run_threads
from novita_flux._cli._balance import check_balance
from novita_flux._cli._common import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInput,
    Console,
    client_options,
    open_client,
    paid_links,
)
from novita_flux._cli._input import read_requests
from novita_flux._cli._signals import deferred
from novita_flux._client import FluxSchnell
from novita_flux._errors import (
    APIStatusError,
    NovitaError,
    ResponseValidationError,
    SaveIncompleteError,
    ValidationError,
)
from novita_flux._faultpoints import reach
from novita_flux._format import usd
from novita_flux._gallery import write_gallery
from novita_flux._identity import request_key, without_drawn_seed
from novita_flux._images import whole_on_disk
from novita_flux._ledger import (
    MANIFEST_NAME,
    SHORT_ANSWER,
    Ledger,
    PlannedLine,
    describe_error,
    short_answer,
)
from novita_flux._lock import DirectoryBusy, DirectoryLock
from novita_flux._models import Generation, entry_of
from novita_flux._progress import Progress
from novita_flux._request import as_budget, check_budget, prepare_request
from novita_flux._row import Row
from novita_flux._spec import default_images_per_minute, known_reasons
from novita_flux._states import TO_DOWNLOAD, IllegalStep, State, Step, sources, to_send

PLAN_CHUNK = 1000  # lines recorded per transaction while planning
# Answers that every other line would get too: stop the batch after the first of them.
STOPPING_KINDS = frozenset({"authentication", "permission"})
STOPPING_REASONS = frozenset({"BILLING_BALANCE_NOT_ENOUGH"})

# What can refuse a write the batch must make: the disk, the database, or (a bug) the ledger's
# table of steps.
Unwritten = OSError | sqlite3.Error | IllegalStep


class BatchRun:
    """One run of a batch over a directory it holds the lock of."""

    def __init__(self, args: argparse.Namespace, ledger: Ledger, console: Console) -> None:
        self.args = args
        self.out: Path = args.out
        self.ledger = ledger
        self.console = console
        self.stop = threading.Event()
        self.interrupted = False
        self.fatal: NovitaError | None = None
        # The disk (or the ledger on it) refused a write: nothing more is sent.
        self.broken: Unwritten | None = None
        console.on_stdout_closed = self.stop.set  # nobody reads the results: send nothing more
        self.spent = Decimal(0)
        self.sent = 0  # requests put on the wire by this run
        self.invalid: list[int] = []  # the numbers of the lines that are not valid requests
        self.progress: Progress = console.progress(0, "images")
        self._counting = threading.Lock()  # results arrive on several worker threads

    # --- planning: everything recorded and priced before the first send ---

    def plan(self) -> None:
        """Record every line of the input; the numbers of those that are not valid requests are
        kept, and each is said (an error: --quiet does not hide what was refused)."""
        limit = self.images_per_minute()
        occurrences: Counter[str] = Counter()
        chunk: list[PlannedLine] = []
        self.ledger.begin_planning()
        for number, request, problem in read_requests(self.args.file):
            if self.stop.is_set():  # interrupted while planning: nothing is sent anyway
                break
            item = self._planned(number, request, problem, limit, occurrences)
            if item.error is not None:
                self.invalid.append(number)
                self.console.error(f"line {number}: {item.error}")
            chunk.append(item)
            if len(chunk) >= PLAN_CHUNK:
                self.ledger.plan(chunk)
                chunk = []
        self.ledger.plan(chunk)

    def _planned(
        self,
        number: int,
        request: Any,
        problem: str | None,
        limit: int | None,
        occurrences: Counter[str],
    ) -> PlannedLine:
        if problem is not None:
            return PlannedLine(number, None, request, error=problem)
        try:
            body, cost = prepare_request(request)  # a seed is drawn here when the line has none
            check_pace(body, limit, "--images-per-minute ")
        except ValidationError as error:
            return PlannedLine(number, None, request, error=str(error))
        content = without_drawn_seed(request, body)
        occurrences[request_key(content)] += 1
        key = request_key(content, occurrences[request_key(content)])
        return PlannedLine(number, key, request, body, cost)

    def _reopen_lost_files(self) -> int:
        """Saved requests whose files are gone or not whole go back to paid, so that their
        images are fetched again while their links last; a damaged file is set aside."""
        reopened = 0
        for row in self.ledger.rows([State.SAVED], report=self.console.info):
            kept = []
            for name in row.files:
                path = self.out / name
                if whole_on_disk(path):
                    kept.append(name)
                elif path.exists():
                    path.replace(path.with_name(name + ".damaged"))
            if len(kept) < len(row.files):
                self.ledger.lost_files(row.key, kept)
                reopened += 1
        return reopened

    def images_per_minute(self) -> int | None:
        limit: int | None = self.args.images_per_minute
        if limit is None:
            return None if self.args.mock else default_images_per_minute()
        return limit or None

    # --- running ---

    def run(self) -> int:
        # The client first: a bad key or URL is refused before the batch says anything.
        with open_client(self.args.mock, **client_options(self.args)) as flux, self._signals():
            return self._run(flux)

    def _run(self, flux: FluxSchnell) -> int:
        try:
            self.plan()
            interrupted_before = self.ledger.settle_interrupted()
            lost = self._reopen_lost_files()
        except (OSError, sqlite3.Error) as error:  # before anything is sent
            raise BadInput(f"--out {self.out}: {_why_unwritten(error)}") from None
        if lost:
            self.console.info(
                f"{lost} saved request(s) have an image missing or damaged: downloading it "
                "again (a download costs nothing)"
            )
        if interrupted_before:
            self.console.info(
                f"{interrupted_before} request(s) were in flight when the last run stopped: they "
                "may have been billed and are not sent again (--resend-unknown sends them)"
            )
        sending = to_send(resend_unknown=self.args.resend_unknown)
        sends, send_images, cost = self.ledger.totals(sending)
        downloads, download_images, _ = self.ledger.totals(TO_DOWNLOAD)
        for row in self.ledger.paid_outside_input():
            downloads += 1
            download_images += len(row.missing_images())
        if self.args.max_total_cost is not None:
            check_budget(cost, as_budget(self.args.max_total_cost, "max_total_cost"), "batch")
        if sends and not self.args.no_balance_check:  # nothing to pay for: nothing to read
            check_balance(
                flux,
                cost,
                self.console,
                f"batch ({sends} request(s) still to send)",
                "; --no-balance-check starts it anyway",
            )
        counts = self.ledger.counts()
        self.console.info(
            f"{sends} request(s) to send, {downloads} to finish saving, "
            f"{counts[State.SAVED]} already saved; {send_images + download_images} image(s), "
            f"estimated ${usd(cost)}"
        )
        if counts[State.UNKNOWN] and not self.args.resend_unknown:
            self.console.info(
                f"{counts[State.UNKNOWN]} request(s) may have been billed and are not sent again "
                "(--resend-unknown sends them)"
            )
        self.progress.total = send_images + download_images
        limit = self.images_per_minute()
        reach("batch.planned")
        clients = flux.lanes(self.args.concurrency)
        try:
            run_threads(
                self._items(sending),
                [self._work_for(client) for client in clients],
                concurrency=self.args.concurrency,
                pacer=None if limit is None else ImagePacer(limit),
                images=self._images_of,
                stop=self.stop,
            )
        finally:
            self.progress.close()
            for client in clients[1:]:
                client.close()
        return self._finish()

    def _items(self, sending: Sequence[State]) -> Iterator[Row]:
        # Paid first: their links expire.
        yield from self.ledger.rows(TO_DOWNLOAD, report=self.console.info)
        yield from self.ledger.paid_outside_input()
        yield from self.ledger.rows(sending, report=self.console.info)

    def _images_of(self, row: Row) -> int:
        return int(row.body["image_num"]) if self._sends(row) else 0

    def _sends(self, row: Row) -> bool:
        """Whether this row is generated (again), rather than only downloaded."""
        if row.line is None:  # no longer asked for: only what was paid is fetched
            return False
        return row.state not in TO_DOWNLOAD or (self.args.regenerate_expired and row.expired)

    def _finish(self) -> int:
        try:
            self.ledger.export_manifest(self.out / MANIFEST_NAME)
            # Everything the journal holds is now in the manifest and the ledger both.
            self.ledger.release_journal()
        except (OSError, sqlite3.Error) as error:
            self._disk_said(error, "the manifest could not be written")
        try:
            self.console.info(f"gallery: {write_gallery(self.out)}")
        except OSError as error:
            self._disk_said(error, "the gallery could not be written")
        counts = self.ledger.counts()
        short = self.ledger.short_answers()
        self.console.info(
            f"{counts[State.SAVED]} saved, {counts[State.PAID]} paid but not saved, "
            f"{counts[State.FAILED]} failed, "
            f"{counts[State.UNKNOWN]} possibly billed, {counts[State.PLANNED]} not sent, "
            f"{len(self.invalid)} invalid line(s), {short} answered with another number of images "
            f"than paid for; spent ${usd(self.spent)}; manifest {self.out / MANIFEST_NAME}"
        )
        if short:
            self.console.error(
                f"novita-flux: {short} request(s) were answered with another number of images "
                f"than they paid for (a contract deviation): every image they hold is kept, and "
                f"they are marked {SHORT_ANSWER} in {self.out / MANIFEST_NAME}"
            )
        if self.fatal is not None:
            self.console.error(
                f"novita-flux: stopped the batch: {type(self.fatal).__name__}: {self.fatal}"
            )
            return EXIT_API_ERROR
        if isinstance(self.broken, IllegalStep):
            self.console.error(
                f"novita-flux: stopped the batch: the ledger refused a step ({self.broken}); "
                "this is a bug in novita-flux: what was paid for is said above; please report it"
            )
            return EXIT_API_ERROR
        if self.broken is not None:
            self.console.error(
                f"novita-flux: stopped the batch: {_why_unwritten(self.broken)}; what was recorded "
                "is kept: free some space and run the same command again to resume"
            )
            return EXIT_API_ERROR
        if self.console.stdout_closed:
            self.console.error(
                "novita-flux: stdout was closed, so the batch sent nothing more; the ledger is "
                "up to date: run the same command again to resume"
            )
            return EXIT_API_ERROR
        if self.interrupted:
            self.console.info(
                "interrupted: the ledger is up to date; run the same command again to resume"
            )
            return EXIT_INTERRUPTED
        return self._outcome(counts, short)

    def _outcome(self, counts: Counter[str], short: int) -> int:
        """The exit status of a run that went to its end, and its one line when it is not 0.
        Status 2 keeps its meaning, nothing was sent: invalid lines beside lines that were sent
        are something that failed (1). Short answers were said above."""
        unfinished = [
            f"{count} {what}"
            for count, what in (
                (counts[State.FAILED], "failed (the next run sends them again)"),
                (
                    counts[State.UNKNOWN],
                    "may have been billed (sent again only with --resend-unknown)",
                ),
                (
                    counts[State.PAID],
                    "paid for with images not saved (the next run downloads them)",
                ),
            )
            if count
        ]
        if self.invalid:
            unfinished.append(
                f"{len(self.invalid)} line(s) of {self.args.file} are not valid requests and "
                f"were not sent: {_line_numbers(self.invalid)}"
            )
        if not unfinished:
            return EXIT_API_ERROR if short else EXIT_OK
        refused_only = len(unfinished) == 1 and self.invalid and not self.sent and not short
        tail = "; nothing was sent" if refused_only else ""
        self.console.error(f"novita-flux: batch: {'; '.join(unfinished)}{tail}")
        return EXIT_BAD_INPUT if refused_only else EXIT_API_ERROR

    # --- one request ---

    def _work_for(self, flux: FluxSchnell) -> Callable[[Row], None]:
        def work(row: Row) -> None:
            try:
                if not self._sends(row):
                    self._save(flux, row, row.unsaved())
                    return
                if self.stop.is_set():
                    return
                try:
                    again = row.state in sources(Step.SEND_AGAIN)
                    sendable = self.ledger.sending(row.key, again=again)
                except (OSError, sqlite3.Error) as error:  # not recorded, so never sent
                    self._cannot_record(row, error, None)
                    return
                if sendable:
                    with self._counting:
                        self.sent += 1
                    reach("batch.sending")
                    self._send(flux, row)
            except _Unrecorded as unrecorded:
                self._cannot_record(row, unrecorded.error, unrecorded.generation)

        return work

    def _send(self, flux: FluxSchnell, row: Row) -> None:
        try:
            generation = flux.generate(**row.body)
        except ResponseValidationError as error:  # a 200 we could not read: likely billed
            reach("batch.answered")
            self._count(spent=row.cost)
            readable = error.generation
            with _recording(readable):
                if readable is None:
                    self.ledger.unknown(row.key, describe_error(error))
                    self._failed(row, State.UNKNOWN, error)
                    return
                self.ledger.paid(row.key, error.task_id, error.images, describe_error(error))
                reach("batch.paid")
            self.console.info(f"{row.where}: {error}; saving the image(s) it could read")
            self._save(flux, _answered(row, readable), readable)
            return
        except NovitaError as error:
            reach("batch.answered")
            if _stops_everything(error):
                with self._counting:
                    first, self.fatal = self.fatal is None, self.fatal or error
                self.stop.set()
                if not first:  # the same answer again: said once, at the end
                    self.ledger.failed(row.key, describe_error(error))
                    self.progress.advance(0, failed=int(row.body["image_num"]))
                    return
            state = State.UNKNOWN if error.possibly_billed else State.FAILED
            with _recording(None):
                (self.ledger.unknown if state == State.UNKNOWN else self.ledger.failed)(
                    row.key, describe_error(error)
                )
            self._failed(row, state, error)
            return
        reach("batch.answered")
        self._count(spent=generation.cost)  # paid, whether or not the ledger can say so
        short = short_answer(row.body, generation.images)
        with _recording(generation):
            self.ledger.paid(row.key, generation.task_id, generation.images, short)
        reach("batch.paid")
        if short is not None:
            missing = max(0, generation.images_paid_for - len(generation.images))
            self.progress.advance(0, failed=missing)
            self.console.info(f"{row.where}: task {generation.task_id}: {short['message']}")
        self._save(flux, _answered(row, generation), generation)

    def _save(self, flux: FluxSchnell, row: Row, generation: Generation) -> None:
        done = list(row.files)

        def landed(path: Path) -> None:
            done.append(path.name)
            self.progress.advance()

        with _recording(generation):
            try:
                flux.save(
                    generation, self.out, metadata={"batch": {"key": row.key}}, on_saved=landed
                )
            except SaveIncompleteError as error:
                self.ledger.partly_saved(row.key, done, describe_error(error))
                self.progress.advance(0, failed=len(error.failures))
                hint = (
                    "their links expired: --regenerate-expired generates them again (and pays "
                    "again)"
                    if error.expired
                    else "run again to retry the download"
                )
                self.console.error(f"{row.where}: saving failed: {error}; {hint}")
                self._result(row, State.PAID, done, error)
                return
            reach("batch.saved")
            # Said again on every run until its line leaves the input: paid, and not in full.
            short = short_answer(row.body, row.images)
            self.ledger.saved(row.key, done, short)
        self._result(row, State.SAVED, done, None, short)

    def _cannot_record(self, row: Row, error: Unwritten, generation: Generation | None) -> None:
        """The disk (or, through a bug, the ledger's table) refused a write: send nothing more,
        and say here what was paid for, in case it is recorded nowhere else."""
        with self._counting:
            self.broken = self.broken or error
        self.stop.set()
        if generation is None:
            self.console.error(f"{row.where}: not sent: {_why_unwritten(error)}")
            return
        self.console.error(
            f"{row.where}: paid for, but {_why_unwritten(error)} before it was all recorded "
            f"and saved: {paid_links(generation)}"
        )

    def _disk_said(self, error: OSError | sqlite3.Error, what: str) -> None:
        self.broken = self.broken or error
        self.console.error(f"novita-flux: {what}: {_why_unwritten(error)}")

    def _failed(self, row: Row, state: str, error: NovitaError) -> None:
        self.progress.advance(0, failed=int(row.body["image_num"]))
        if error is not self.fatal:  # that one is said once, at the end
            self.console.error(f"{row.where}: {type(error).__name__}: {error}")
        self._result(row, state, [], error)

    def _result(
        self,
        row: Row,
        state: str,
        files: list[str],
        error: NovitaError | None,
        note: dict[str, Any] | None = None,
    ) -> None:
        """One line's outcome in this run, on stdout; `note` is said in place of an error."""
        said = f"{type(error).__name__}: {error}" if error is not None else ""
        if note is not None and error is None:
            said = f"{note['type']}: {note['message']}"
        self.console.result(
            {
                "line": row.line,
                "key": row.key,
                "status": state,
                "task_id": row.task_id,
                "seed": row.seed,
                "cost": row.cost,
                "files": files,
                "error": describe_error(error) if error is not None else note,
            },
            f"{row.where}: {state}"
            + (f" {', '.join(files)}" if files else "")
            + (f" ({said})" if said else ""),
        )

    def _count(self, *, spent: Decimal) -> None:
        with self._counting:
            self.spent += spent
        self.progress.advance(0, spent=spent)

    # --- signals: the first stops new sends, the second leaves at once ---

    def _signals(self) -> contextlib.AbstractContextManager[None]:
        def first(signum: signal.Signals) -> None:
            self.interrupted = True
            self.stop.set()
            self.console.info(
                f"{signum.name}: sending nothing more; waiting for the requests already sent "
                "(again to stop at once)"
            )

        def again(signum: signal.Signals) -> None:
            self.console.error(
                "novita-flux: stopped at once; the requests in flight may have been billed"
            )
            os._exit(EXIT_INTERRUPTED)  # the ledger is consistent after every commit

        return deferred(first, again)


class _Unrecorded(Exception):
    """A step after the answer could not be written; carries what the answer said."""

    def __init__(self, error: Unwritten, generation: Generation | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.generation = generation


def _answered(row: Row, generation: Generation) -> Row:
    """The row as the ledger now holds it: the answer's task and images recorded."""
    images = [entry_of(image) for image in generation.images]
    return attrs.evolve(row, task_id=generation.task_id, images=images)


@contextlib.contextmanager
def _recording(generation: Generation | None) -> Iterator[None]:
    """A write after the answer: if the disk refuses it, the answer goes up with the error. So
    it does if the ledger refuses the step itself (IllegalStep, a bug in this module): the
    answer was paid for all the same, and would otherwise be recorded nowhere."""
    try:
        yield
    except (OSError, sqlite3.Error, IllegalStep) as error:
        raise _Unrecorded(error, generation) from error


def _line_numbers(numbers: list[int], shown: int = 10) -> str:
    """'lines 3-17, 20, 24' (in runs, the first `shown` runs of them)."""
    runs: list[tuple[int, int]] = []
    for number in numbers:  # ascending: the file is read in order
        if runs and number == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs[:shown])
    more = f" and {len(runs) - shown} more" if len(runs) > shown else ""
    return f"line{'s' if len(numbers) > 1 else ''} {text}{more}"


def _why_unwritten(error: Unwritten) -> str:
    """Why a write the batch must make did not happen, in a few words for its error line."""
    if isinstance(error, IllegalStep):
        return f"the ledger refused the step ({error})"
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"cannot write{where}: {error.strerror or error}"
    return f"cannot write the ledger: {error}"


def _stops_everything(error: NovitaError) -> bool:
    if not isinstance(error, APIStatusError):
        return False
    known = known_reasons().get(error.reason) if error.reason is not None else None
    if known is not None:
        return known.kind in STOPPING_KINDS or error.reason in STOPPING_REASONS
    return error.status_code in (401, 403)


def run_batch(args: argparse.Namespace, console: Console) -> int:
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = DirectoryLock(out).acquire()
    except DirectoryBusy as error:
        raise BadInput(str(error)) from None
    except OSError as error:
        raise BadInput(f"--out {out}: {error.strerror or error}") from None
    try:
        if lock.previous_pid is not None:
            console.info(
                f"taking over {out}: the process that held it ({lock.previous_pid}) is gone"
            )
        for stray in out.glob(".novita-*.part"):  # half-written images of a killed run
            stray.unlink(missing_ok=True)
        try:
            ledger = Ledger.open(out, console.info)
        except (OSError, sqlite3.Error) as error:
            raise BadInput(f"--out {out}: {_why_unwritten(error)}") from None
        try:
            return BatchRun(args, ledger, console).run()
        finally:
            ledger.close()
    finally:
        lock.release()
