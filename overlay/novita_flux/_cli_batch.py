"""`novita-flux batch`: a JSONL file of requests, run at the API's pace, resumable."""

from __future__ import annotations

import argparse
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from novita_flux._batch import BatchResult, plan_batch, total_cost
from novita_flux._cli import (
    EXIT_API_ERROR,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    BadInput,
    info,
    open_client,
)
from novita_flux._client import FluxSchnell
from novita_flux._errors import NovitaError
from novita_flux._manifest import (
    DONE,
    FAILED,
    GENERATED,
    INVALID,
    Entry,
    Manifest,
    describe_error,
    generated_entry,
    request_key,
)
from novita_flux._progress import Progress
from novita_flux._spec import default_images_per_minute


@attrs.frozen
class Line:
    number: int  # 1-based, as an editor shows it
    key: str
    request: Any  # the parsed JSON value


def read_lines(path: Path) -> tuple[list[Line], list[tuple[int, str]]]:
    """The input's requests, and the lines that are not JSON at all (number, message)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInput(f"cannot read {path}: {error}") from None
    lines, unreadable = [], []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            request = json.loads(raw)
        except ValueError as error:
            unreadable.append((number, f"not valid JSON ({error})"))
            continue
        lines.append(Line(number, request_key(request), request))
    return lines, unreadable


class BatchRun:
    """One run of a batch: what is left to do, and the bookkeeping as results arrive."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.out.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.out / "manifest.jsonl")
        self.failed = 0
        self.invalid = 0
        self.done = 0
        self.spent = Decimal(0)
        self.progress = Progress(0, "images")
        self._counting = threading.Lock()  # results arrive on several worker threads

    def _count(
        self, *, done: int = 0, failed: int = 0, invalid: int = 0, spent: int | Decimal = 0
    ) -> None:
        with self._counting:
            self.done += done
            self.failed += failed
            self.invalid += invalid
            self.spent += spent

    def run(self) -> int:
        lines, unreadable = read_lines(self.args.file)
        for number, message in unreadable:
            self._invalid(Line(number, "", None), message)
        to_save, to_generate = self._sort(lines)
        limit = self._images_per_minute()
        plan = plan_batch(
            [self._request(line) for line in to_generate],
            images_per_minute=limit,
            max_total_cost=self.args.max_total_cost,
        )
        runnable: list[tuple[Line, dict[str, Any]]] = []
        for line, item in zip(to_generate, plan, strict=True):
            if item.body is None:
                self._invalid(line, str(item.error), item.error)
            else:
                runnable.append((line, item.body))
        images = sum(len(entry.images) for entry in to_save)
        images += sum(body["image_num"] for _, body in runnable)
        info(
            f"{len(runnable)} request(s) to generate, {len(to_save)} to finish saving, "
            f"{self.done} already done; {images} image(s), estimated ${total_cost(plan)}"
        )
        self.progress.total = images
        try:
            with open_client(self.args.mock) as flux:
                for entry in to_save:
                    self._save(flux, entry)
                flux.generate_many(
                    [body for _, body in runnable],
                    concurrency=self.args.concurrency,
                    images_per_minute=limit,
                    on_result=lambda result: self._finish(flux, runnable[result.index], result),
                )
        except KeyboardInterrupt:
            self.progress.close()
            info(
                f"interrupted: {self.manifest.path} is up to date; run the same command again "
                "to resume"
            )
            return EXIT_INTERRUPTED
        self.progress.close()
        info(
            f"{self.done} done, {self.failed} failed, {self.invalid} invalid line(s); "
            f"spent ${self.spent}; manifest {self.manifest.path}"
        )
        if self.failed:
            return EXIT_API_ERROR
        return EXIT_BAD_INPUT if self.invalid else EXIT_OK

    def _sort(self, lines: list[Line]) -> tuple[list[Entry], list[Line]]:
        """Skip what is done; finish saving what was paid for; generate the rest."""
        to_save, to_generate = [], []
        for line in lines:
            entry = self.manifest.get(line.number, line.key)
            if entry is not None and entry.status == DONE:
                self._count(done=1)
            elif entry is not None and entry.status == GENERATED:
                if any(image.expired for image in entry.generation().images):
                    info(
                        f"line {line.number}: its image links expired before they were saved; "
                        "generating it again"
                    )
                    to_generate.append(line)
                else:
                    to_save.append(entry)
            else:
                to_generate.append(line)
        return to_save, to_generate

    def _request(self, line: Line) -> Any:
        """The line's request; a retried line keeps the seed it was first sent with."""
        entry = self.manifest.get(line.number, line.key)
        request = line.request
        if isinstance(request, dict) and "seed" not in request and entry and entry.seed is not None:
            request = {**request, "seed": entry.seed}
        return request

    def _images_per_minute(self) -> int | None:
        limit: int | None = self.args.images_per_minute
        if limit is None:
            return None if self.args.mock else default_images_per_minute()
        return limit or None

    def _invalid(self, line: Line, message: str, error: NovitaError | None = None) -> None:
        self._count(invalid=1)
        info(f"line {line.number}: {message}")
        described = (
            describe_error(error) if error else {"type": "JSONDecodeError", "message": message}
        )
        self.manifest.put(Entry(line.number, line.key, INVALID, line.request, error=described))

    def _finish(
        self, flux: FluxSchnell, item: tuple[Line, dict[str, Any]], result: BatchResult
    ) -> None:
        line, body = item
        if result.generation is None:
            self._count(failed=1)
            error = result.error or RuntimeError("no result")
            self.manifest.put(
                Entry(
                    line.number,
                    line.key,
                    FAILED,
                    line.request,
                    body=body,
                    seed=body["seed"],
                    error=describe_error(error),
                )
            )
            self.progress.advance(0, failed=1)
            info(f"line {line.number}: {type(error).__name__}: {error}")
            return
        entry = generated_entry(line.number, line.key, line.request, result.generation)
        self.manifest.put(entry)  # paid for: recorded before saving, so it is never paid twice
        self._count(spent=result.generation.cost)
        self._save(flux, entry)

    def _save(self, flux: FluxSchnell, entry: Entry) -> None:
        generation = entry.generation()
        try:
            paths = flux.save(
                generation, self.out, metadata=True, on_saved=lambda _: self.progress.advance()
            )
        except NovitaError as error:
            self._count(failed=1)
            self.manifest.put(attrs.evolve(entry, error=describe_error(error)))
            self.progress.advance(0, failed=1)
            info(f"line {entry.line}: saving failed ({error}); run again to retry the download")
            return
        self._count(done=1)
        self.manifest.put(
            attrs.evolve(entry, status=DONE, files=[path.name for path in paths], error=None)
        )


def run_batch(args: argparse.Namespace) -> int:
    return BatchRun(args).run()
