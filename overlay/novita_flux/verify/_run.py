"""A verification run: the plan, its price held to the budget before anything is sent, then
every probe sent in order, paced to the API's image rate, judged, reported and recorded."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from novita_flux import _retry
from novita_flux._batch import WINDOW_SECONDS, ImagePacer
from novita_flux._config import check_api_key, check_count, check_flag, check_max_retries
from novita_flux._constants import API_KEY_ENV, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from novita_flux._request import as_budget, check_budget, compiled_request_schema
from novita_flux._spec import default_images_per_minute, document, known_reasons, operation
from novita_flux.verify._checks import judge_probe
from novita_flux.verify._exchange import (
    Attempt,
    Exchange,
    ImageFetch,
    Transport,
    Unanswered,
    as_json,
)
from novita_flux.verify._judge import answer_line
from novita_flux.verify._plan import build_plan
from novita_flux.verify._price import sized
from novita_flux.verify._probes import DEFAULT_MAX_COST, Plan, Probe, Send, total
from novita_flux.verify._record import Recorder
from novita_flux.verify._redact import Redactor
from novita_flux.verify._report import Finding, ProbeResult, Report

# Probes that expect images: paced to the rate, so that a 429 means what the rate-limit probe
# makes it mean.
PACED: Final = frozenset({"generates", "format_field", "seed_omitted", "same_bytes", "top_up"})
# Answers to the key itself: nothing more can be checked with it. An operation that is never
# billed (reading the balance) stops the run only when the key itself is refused: a key without
# the right to read the balance may still generate.
STOPPING_KINDS: Final = frozenset({"authentication", "permission"})
STOPPING_KINDS_OF_FREE: Final = frozenset({"authentication"})
STOPPING_REASONS: Final = frozenset({"BILLING_BALANCE_NOT_ENOUGH"})

Budget = Decimal | float | int | str


class Unreachable(Exception):
    """The API could not be reached at all: nothing more can be checked."""


def run(
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    max_cost: Budget = DEFAULT_MAX_COST,
    record: str | os.PathLike[str] | None = None,
    probe_rate_limit: bool = False,
    images_per_minute: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    groups: Iterable[str] | None = None,
    on_plan: Callable[[Plan], Any] | None = None,
    on_result: Callable[[ProbeResult], Any] | None = None,
    allow_insecure: bool = False,
    max_retries: int = DEFAULT_MAX_RETRIES,
    retry_server_errors: bool = False,
) -> Report:
    """Check the spec against the API (or any server at `base_url`) and report every difference.

    The plan is drawn from the spec and priced first; `on_plan` sees it before anything is sent,
    and a plan that could cost more than `max_cost` (USD, default 0.01) raises
    BudgetExceededError with nothing sent. The key comes from `api_key` or NOVITA_API_KEY
    (MissingAPIKeyError without one). Requests that generate images are paced to
    `images_per_minute` (default: the spec's per-key limit; 0 turns pacing off). `record` is a
    directory to write one redacted VCR.py cassette per probe into. `groups` keeps only some
    probe groups; `on_result` sees each probe's result as it is judged.

    `allow_insecure`, `max_retries` and `retry_server_errors` mean what they mean to the client:
    a request is sent again up to `max_retries` times when it never left, met a 429 it did not
    ask for, or had an answer the client would retry (a 5xx the spec says cost nothing, or any
    5xx with `retry_server_errors`, which may pay twice).
    """
    plan = build_plan(probe_rate_limit=probe_rate_limit, groups=groups)
    limit = _limit(images_per_minute)
    budget = as_budget(max_cost)
    secret = check_api_key(api_key if api_key is not None else os.environ.get(API_KEY_ENV, ""))
    check_max_retries(max_retries)
    check_flag("retry_server_errors", retry_server_errors)
    # The client first: a missing key or a base URL it refuses is said before the plan.
    with Transport(
        api_key=api_key, base_url=base_url, timeout=timeout, allow_insecure=allow_insecure
    ) as transport:
        if on_plan is not None:
            on_plan(plan)
        check_budget(plan.worst_case, budget, "verification plan (at its worst case)")
        redactor = Redactor(secret)
        recorder = None if record is None else Recorder(Path(record), redactor, transport.base_url)
        runner = _Runner(
            transport,
            redactor,
            recorder,
            limit,
            on_result,
            max_retries=max_retries,
            retry_server_errors=retry_server_errors,
        )
        results, stopped = runner.run(plan.probes)
        return Report(
            base_url=transport.base_url,
            spec_version=str(document()["info"]["version"]),
            plan=plan,
            results=tuple(results),
            stopped=None if stopped is None else redactor.text(stopped),
        )


def _limit(images_per_minute: int | None) -> int | None:
    if images_per_minute is None:
        return default_images_per_minute()
    return check_count("images_per_minute", images_per_minute, 0) or None


class _Runner:
    def __init__(
        self,
        transport: Transport,
        redactor: Redactor,
        recorder: Recorder | None,
        limit: int | None,
        on_result: Callable[[ProbeResult], Any] | None,
        *,
        max_retries: int,
        retry_server_errors: bool,
    ) -> None:
        self.max_retries = max_retries
        self.retry_server_errors = retry_server_errors
        self.transport = transport
        self.redactor = redactor
        self.recorder = recorder
        self.pacer = None if limit is None else ImagePacer(limit)
        # How long a 429 nobody asked for is waited out when it names no wait of its own.
        self.limit = limit or default_images_per_minute()
        self.on_result = on_result
        self.schema = compiled_request_schema()

    def run(self, probes: Sequence[Probe]) -> tuple[list[ProbeResult], str | None]:
        results: list[ProbeResult] = []
        history: list[tuple[ProbeResult, list[Attempt]]] = []
        stopped: str | None = None
        for probe in probes:
            if stopped is not None:
                results.append(self._finish(probe, [], ProbeResult(probe, unchecked=stopped)))
                continue
            probe = sized(probe, total(result.spent for result in results), self.schema)
            try:
                attempts = self._attempts(probe)
            except Unreachable as error:
                stopped = str(error)
                results.append(self._finish(probe, [], ProbeResult(probe, unchecked=stopped)))
                continue
            refused = _refused_key(attempts)
            if refused is not None:
                stopped = f"{refused}; nothing more was sent"
                result = ProbeResult(probe, unchecked=refused)
            else:
                result = judge_probe(probe, attempts, history)
            results.append(self._finish(probe, attempts, result))
            history.append((results[-1], attempts))
        return results, stopped

    def _finish(self, probe: Probe, attempts: list[Attempt], result: ProbeResult) -> ProbeResult:
        result = _redacted(result, self.redactor)
        if self.recorder is not None and attempts:
            self.recorder.write(probe, attempts, result)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _attempts(self, probe: Probe) -> list[Attempt]:
        attempts: list[Attempt] = []
        burst = probe.check == "rate_limit"
        for send in probe.sends:
            attempt = self._send(send, paced=probe.check in PACED, retry_429=not burst)
            if attempt.status == 200 and not burst:
                attempt = self._with_images(attempt)
            # The key out of whatever the server sent back, before anything reads it.
            attempt = self.redactor.attempt(attempt)
            attempts.append(attempt)
            if attempt.exchange is None or (burst and attempt.status != 200):
                break
            if _refused_key([attempt]) is not None:
                break
        return attempts

    def _send(self, send: Send, *, paced: bool, retry_429: bool) -> Attempt:
        """Send one planned request, and again exactly when the client would (_retry's policy:
        which failures may be sent again, and how long to wait first)."""
        attempt = 0
        while True:
            if paced and self.pacer is not None:
                _wait_until(self.pacer.ready_at(send.images, time.monotonic()))
            try:
                exchange = self.transport.post(send)
            except Unanswered as error:
                if error.sent:  # it may have run: never sent again
                    return Attempt(send, failure=str(error))
                delay = _retry.retry_delay(attempt, self.max_retries, None)
                if delay is None:
                    raise Unreachable(f"the API could not be reached: {error}") from None
            else:
                if exchange.status == 200 and self.pacer is not None:
                    self.pacer.record(_images_in(exchange) or send.images, time.monotonic())
                delay = self._retry_delay(send, exchange, attempt, retry_429=retry_429)
                if delay is None:
                    return Attempt(send, exchange)
            _retry.sleep(delay)
            attempt += 1

    def _retry_delay(
        self, send: Send, exchange: Exchange, attempt: int, *, retry_429: bool
    ) -> float | None:
        """How long the client would wait before sending this request again after this answer;
        None when it would not send it again (or a burst's 429, which the probe is after)."""
        payload = as_json(exchange.body)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        retryable = _retry.retryable_answer(
            exchange.status, reason if isinstance(reason, str) else None, self.retry_server_errors
        )
        if not retryable or (exchange.status == 429 and not retry_429):
            return None
        retry_after = _retry.parse_retry_after(exchange.header(_retry.RETRY_AFTER))
        if retry_after is None and exchange.status == 429:
            # A 429 that names no wait of its own is waited out for the request's share of
            # the window, not the backoff: sent sooner, it would only be refused again.
            retry_after = WINDOW_SECONDS * max(send.images, 1) / self.limit
        return _retry.retry_delay(attempt, self.max_retries, retry_after)

    def _with_images(self, attempt: Attempt) -> Attempt:
        assert attempt.exchange is not None
        payload = as_json(attempt.exchange.body)
        images = payload.get("images") if isinstance(payload, dict) else None
        fetches = []
        for index, image in enumerate(images if isinstance(images, list) else ()):
            url = image.get("image_url") if isinstance(image, dict) else None
            if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                continue  # the body's own findings say so
            try:
                fetches.append(ImageFetch(index, url, tuple(self.transport.fetch(url))))
            except Unanswered as error:
                fetches.append(ImageFetch(index, url, failure=str(error)))
        return Attempt(attempt.send, attempt.exchange, images=tuple(fetches))


def _refused_key(attempts: Sequence[Attempt]) -> str | None:
    """Why the API refused the key itself (so nothing more can be checked), if it did."""
    for attempt in attempts:
        exchange = attempt.exchange
        if exchange is None or attempt.send.auth != "key" or exchange.status < 400:
            continue
        payload = as_json(exchange.body)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        known = known_reasons().get(reason) if isinstance(reason, str) else None
        free = operation(attempt.send.operation).free
        if known is not None:
            kinds = STOPPING_KINDS_OF_FREE if free else STOPPING_KINDS
            stops = known.kind in kinds or (reason in STOPPING_REASONS and not free)
        else:
            stops = exchange.status in ((401,) if free else (401, 403))
        if stops:
            return f"the API refused the key: {answer_line(exchange)}"
    return None


def _images_in(exchange: Any) -> int:
    payload = as_json(exchange.body)
    images = payload.get("images") if isinstance(payload, dict) else None
    return len(images) if isinstance(images, list) else 0


def _wait_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        _retry.sleep(delay)


def _redacted(result: ProbeResult, redactor: Redactor) -> ProbeResult:
    """The result with the key and signed queries out of every string a server could fill."""
    findings = tuple(
        Finding(f.kind, redactor.text(f.where), redactor.text(f.spec), redactor.text(f.got))
        for f in result.findings
    )
    unchecked = None if result.unchecked is None else redactor.text(result.unchecked)
    return ProbeResult(
        result.probe, findings, redactor.text(result.summary), unchecked, result.spent
    )
