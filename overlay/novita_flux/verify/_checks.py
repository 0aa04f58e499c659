"""Each kind of probe's check: its attempts judged into a ProbeResult, and the open questions
answered in plain words."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from decimal import Decimal

from novita_flux._retry import parse_retry_after
from novita_flux._spec import default_images_per_minute
from novita_flux.verify._exchange import NOT_JSON, Attempt, as_json
from novita_flux.verify._judge import (
    Judged,
    answer_line,
    judge_generation,
    judge_read,
    judge_refusal,
)
from novita_flux.verify._price import History, judge_price
from novita_flux.verify._probes import Probe, total
from novita_flux.verify._report import Finding, ProbeResult


def judge_probe(probe: Probe, attempts: Sequence[Attempt], history: History = ()) -> ProbeResult:
    """The result of a probe from what its requests got back (and, for the price check, from
    what the probes before it got: `history`, their results and attempts in order)."""
    spent = total(_spent(attempt) for attempt in attempts)
    failed = next((attempt for attempt in attempts if attempt.exchange is None), None)
    if not attempts or (failed is not None and probe.check != "rate_limit"):
        why = failed.failure if failed is not None and failed.failure else "not sent"
        return ProbeResult(probe, unchecked=why, spent=spent)
    failing = next((a for a in attempts if a.exchange and a.exchange.status >= 500), None)
    if failing is not None and failing.exchange is not None:
        # A server error says nothing of the contract, and may follow a billed task: the probe
        # is left unchecked rather than sent again.
        return ProbeResult(
            probe, unchecked=f"the API failed: {answer_line(failing.exchange)}", spent=spent
        )
    if probe.check in _WITH_HISTORY:
        return _WITH_HISTORY[probe.check](probe, attempts, history)
    findings, summary = _CHECKS[probe.check](probe, attempts)
    return ProbeResult(probe, tuple(findings), summary, spent=spent)


def _spent(attempt: Attempt) -> Decimal:
    """What an answer cost: a 200 generated images (at the worst case, if the spec said the
    request would be refused)."""
    if attempt.status != 200:
        return Decimal(0)
    return attempt.send.cost or attempt.send.worst_cost


Outcome = tuple[list[Finding], str]


def _generates(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    (attempt,) = attempts
    judged = judge_generation(attempt, asked_type=_asked_type(attempt))
    return judged.findings, judged.summary


def _refused(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    (attempt,) = attempts
    judged = judge_refusal(attempt, probe.reasons)
    return judged.findings, judged.summary


def _authentication(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    (attempt,) = attempts
    judged = judge_refusal(attempt, probe.reasons)
    assert attempt.exchange is not None
    answer = Finding("answered", probe.title, "", answer_line(attempt.exchange))
    return [*judged.findings, answer], judged.summary


def _format_field(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    """Which name of the image-type field the server honours: the same type asked for under
    each name, and the bytes that came back read. The first name is the spec's, which must be
    honoured; the others may be honoured, ignored or refused."""
    findings: list[Finding] = []
    parts = []
    for position, attempt in enumerate(attempts):
        body = attempt.send.body
        # The field each request names and the others do not.
        other = attempts[1 if position == 0 else 0].send.body
        name = next(key for key in body if key not in other)
        asked = body[name]
        judged = _either(attempt, asked if position == 0 else None)
        answer = _honoured(attempt, judged, asked)
        findings += [*judged.findings, Finding("answered", name, "", answer)]
        parts.append(f"{name} {answer.partition(':')[0]}")
    return findings, "; ".join(parts)


def _honoured(attempt: Attempt, judged: Judged, asked: str) -> str:
    assert attempt.exchange is not None
    if attempt.exchange.status != 200:
        return f"refused: {answer_line(attempt.exchange)}"
    kind = judged.images[0][0] if 0 in judged.images else None
    if kind is None:
        return "accepted, but no image could be read to tell"
    if kind == asked:
        return f"honoured: {asked} asked, {kind.upper()} bytes came back"
    return f"ignored: {asked} asked, {kind.upper()} bytes came back"


def _seed_omitted(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    (attempt,) = attempts
    assert attempt.exchange is not None
    judged = _either(attempt, _asked_type(attempt))
    if attempt.exchange.status == 200:
        payload = as_json(attempt.exchange.body)
        extra = payload.get("extra") if isinstance(payload, dict) else None
        seed = extra.get("seed") if isinstance(extra, dict) else None
        chosen = f"; the server chose seed {seed} (extra.seed)" if seed is not None else ""
        answer = f"accepted: 200{chosen}"
    else:
        answer = f"refused: {answer_line(attempt.exchange)}"
    return [*judged.findings, Finding("answered", "without seed", "", answer)], answer


def _same_bytes(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    findings: list[Finding] = []
    images: list[bytes | None] = []
    for attempt in attempts:
        judged = judge_generation(attempt, asked_type=_asked_type(attempt))
        findings += judged.findings
        images.append(judged.images[0][1] if 0 in judged.images and judged.images[0][1] else None)
    first, second = images[0], images[1]
    if first is None or second is None:
        answer = "could not tell: an image could not be downloaded"
    elif first == second:
        answer = f"the same bytes ({len(first)} bytes, sha256 {_digest(first)})"
    else:
        answer = (
            f"different bytes ({len(first)} bytes, sha256 {_digest(first)}; then {len(second)} "
            f"bytes, sha256 {_digest(second)})"
        )
    return [*findings, Finding("answered", "the same request twice", "", answer)], answer


def _rate_limit(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    """The answer that crossed the limit, as it came: status, reason, message, Retry-After."""
    findings: list[Finding] = []
    images = 0
    for attempt in attempts:
        if attempt.exchange is None:
            answer = f"could not tell: {attempt.failure}"
            return [*findings, Finding("answered", "the limit", "", answer)], answer
        if attempt.exchange.status == 200:
            findings += judge_generation(attempt, asked_type=None, download=False).findings
            images += attempt.send.images
            continue
        judged = judge_refusal(attempt, probe.reasons)
        findings += judged.findings
        retry_after = attempt.exchange.header("retry-after")
        if retry_after is not None and parse_retry_after(retry_after) is None:
            findings.append(
                Finding("deviates", "header Retry-After", "seconds or an HTTP date", retry_after)
            )
        sent = "not sent" if retry_after is None else repr(retry_after)
        answer = f"after {images} image(s): {answer_line(attempt.exchange)}; Retry-After {sent}"
        return [*findings, Finding("answered", "the limit", "", answer)], answer
    answer = (
        f"no 429 after {images} images at once: this key's limit is above the spec's default "
        f"of {default_images_per_minute()} images a minute"
    )
    return [*findings, Finding("answered", "the limit", "", answer)], answer


def _reads(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    """An operation that takes no body, read with the key: a 200 judged by the spec, or a
    refusal (a key without billing rights) said as the answer it is."""
    (attempt,) = attempts
    assert attempt.exchange is not None
    judged = judge_read(attempt)
    if attempt.exchange.status == 200:
        return judged.findings, judged.summary
    answer = f"could not be read with this key: {answer_line(attempt.exchange)}"
    return [*judged.findings, Finding("answered", probe.title, "", answer)], answer


def _top_up(probe: Probe, attempts: Sequence[Attempt]) -> Outcome:
    """The request that brings the run's spending to a whole number of units: a generation."""
    return _generates(probe, attempts)


def _either(attempt: Attempt, asked_type: str | None) -> Judged:
    """A question's answer may be a generation or a refusal: each is judged as what it is."""
    assert attempt.exchange is not None
    if attempt.exchange.status == 200:
        return judge_generation(attempt, asked_type=asked_type)
    return judge_refusal(attempt, None)


def _asked_type(attempt: Attempt) -> str | None:
    body = attempt.send.body
    value = body.get("response_image_type") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


_CHECKS: dict[str, Callable[[Probe, Sequence[Attempt]], Outcome]] = {
    "generates": _generates,
    "refused": _refused,
    "authentication": _authentication,
    "format_field": _format_field,
    "seed_omitted": _seed_omitted,
    "same_bytes": _same_bytes,
    "rate_limit": _rate_limit,
    "reads": _reads,
    "top_up": _top_up,
}
# Checks that judge what the probes before them got too.
_WITH_HISTORY: dict[str, Callable[[Probe, Sequence[Attempt], History], ProbeResult]] = {
    "price": judge_price,
}

__all__ = ["NOT_JSON", "judge_probe"]
