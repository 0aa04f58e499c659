"""Answers judged against the spec: a generation (status, content type, body, the images behind
its links, and whether the client reads it) and a refusal (status, envelope, reason, and the
exception the client would raise).

Each function returns findings (deviations and tolerated variants; see _conformance) and a
short account of the answer for the report line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import httpx

from novita_flux._balance import parse_balance
from novita_flux._base_client import parse_generation
from novita_flux._errors import (
    NovitaError,
    ResponseValidationError,
    error_class,
    status_error,
)
from novita_flux._format import shortened
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, dimensions, incomplete, sniff
from novita_flux._request import field_schema
from novita_flux._schema import show
from novita_flux._spec import (
    BALANCE,
    GENERATE,
    canonical_image_type,
    error_schema,
    image_media_types,
    known_reasons,
    operation,
    resolve,
    response_schema,
)
from novita_flux.verify._conformance import differences
from novita_flux.verify._exchange import NOT_JSON, Attempt, Exchange, ImageFetch, as_json
from novita_flux.verify._report import Finding


@attrs.frozen
class Judged:
    """Findings about one answer, a short account of it, and its images as downloaded (index ->
    (the type their bytes say, the bytes)), for the questions to compare."""

    findings: list[Finding]
    summary: str
    images: dict[int, tuple[str | None, bytes]] = attrs.field(factory=dict)


def answer_line(exchange: Exchange) -> str:
    """`400 INVALID_REQUEST_BODY: 'width: ...'`, or the status and the start of the body."""
    payload = as_json(exchange.body)
    if isinstance(payload, dict) and isinstance(payload.get("reason"), str):
        message = payload.get("message")
        text = f"{exchange.status} {payload['reason']}"
        return text + (f": {shortened(message.strip())!r}" if isinstance(message, str) else "")
    head = exchange.body[:60].decode(errors="replace")
    return f"{exchange.status} {exchange.reason_phrase}" + (f": {head!r}" if head else "")


# --- a generation -------------------------------------------------------------------------------


def judge_generation(attempt: Attempt, *, asked_type: str | None, download: bool = True) -> Judged:
    """A 200 with images, as the spec says: `asked_type` is the type the request asked for
    (None when the question is which type comes back)."""
    exchange = attempt.exchange
    assert exchange is not None
    if exchange.status != 200:
        finding = Finding("deviates", "status", "200 with the images", answer_line(exchange))
        return Judged([finding], answer_line(exchange))
    findings = _content_type(exchange, 200, attempt.send.operation)
    payload = as_json(exchange.body)
    if payload is NOT_JSON:
        got = show(exchange.body[:60].decode(errors="replace"))
        return Judged([*findings, Finding("deviates", "$", "a JSON body", got)], "200, not JSON")
    findings += differences(response_schema(attempt.send.operation, 200), payload)
    body = attempt.send.body if isinstance(attempt.send.body, dict) else {}
    images = payload.get("images") if isinstance(payload, dict) else None
    images = images if isinstance(images, list) else []
    asked_num = body.get("image_num")
    if type(asked_num) is int and len(images) != asked_num:
        findings.append(
            Finding("deviates", "$.images", f"{asked_num} image(s) (image_num)", str(len(images)))
        )
    if asked_type is not None:
        for index, image in enumerate(images):
            named = image.get("image_type") if isinstance(image, dict) else None
            if isinstance(named, str) and canonical_image_type(named) != asked_type:
                findings.append(
                    Finding(
                        "deviates",
                        f"$.images[{index}].image_type",
                        f"{asked_type!r} (the type asked for)",
                        repr(named),
                    )
                )
    if not any(finding.kind == "deviates" for finding in findings):
        findings += _client_reads(exchange, body, attempt.send.cost)
    judged: dict[int, tuple[str | None, bytes]] = {}
    size = (body.get("width"), body.get("height"))
    for fetch in attempt.images if download else ():
        image_findings, kind, data = judge_image(fetch, asked_type, size)
        findings += image_findings
        judged[fetch.index] = (kind, data)
    return Judged(findings, _generation_line(images, judged, size), judged)


def _generation_line(
    images: list[Any], judged: dict[int, tuple[str | None, bytes]], size: tuple[Any, Any]
) -> str:
    kinds = sorted({kind or "unreadable" for kind, _ in judged.values()})
    what = f"{len(images)} image(s)"
    if judged:
        what = f"{len(images)} {'/'.join(kinds)} image(s) of {size[0]}x{size[1]}"
    return f"200: {what}"


def _client_reads(exchange: Exchange, body: dict[str, Any], cost: Decimal) -> list[Finding]:
    """Whether the client itself reads the answer: a judge and a client that disagree are a
    bug in one of them, worth a line either way."""
    request = {
        "seed": 0,
        "response_image_type": field_schema("response_image_type")["default"],
        **body,
    }
    try:
        parse_generation(exchange.response(), request, cost, datetime.now(UTC))
    except ResponseValidationError as error:
        return [Finding("deviates", "client", "a body the client reads", error.problem)]
    return []


def judge_image(
    fetch: ImageFetch, asked_type: str | None, size: tuple[Any, Any]
) -> tuple[list[Finding], str | None, bytes]:
    """The image behind a link: fetched without a key, of the type asked for, whole, and of
    the size asked for (read from its header)."""
    where = f"image {fetch.index}"
    if fetch.failure is not None or not fetch.hops:
        return (
            [Finding("deviates", f"{where}: download", "the image", fetch.failure or "")],
            None,
            b"",
        )
    answer = fetch.hops[-1]
    if answer.status != 200:
        got = f"{answer.status} {answer.body[:80].decode(errors='replace')!r}"
        return [Finding("deviates", f"{where}: download", "200 with the image", got)], None, b""
    data = answer.body
    kind = sniff(data[:HEAD_BYTES])
    findings = _image_media_type(where, answer.media_type, asked_type or kind)
    if kind is None:
        got = f"bytes starting {data[:8].hex()}"
        findings.append(Finding("deviates", f"{where}: type", "a PNG, JPEG or WebP image", got))
        return findings, None, data
    if asked_type is not None and kind != asked_type:
        findings.append(
            Finding("deviates", f"{where}: type", f"{asked_type} (the type asked for)", kind)
        )
    broken = incomplete(kind, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data))
    if broken is not None:
        findings.append(Finding("deviates", f"{where}: whole", f"a whole {kind} file", broken))
    read = dimensions(data)
    if read is None:
        findings.append(Finding("deviates", f"{where}: size", "a readable size", "unreadable"))
    elif read != size:
        expected = f"{size[0]}x{size[1]} (width x height asked for)"
        findings.append(Finding("deviates", f"{where}: size", expected, f"{read[0]}x{read[1]}"))
    return findings, kind, data


def _image_media_type(where: str, media_type: str | None, image_type: str | None) -> list[Finding]:
    served = image_media_types()
    allowed = [media.replace("{image_type}", image_type or "*") for media in served]
    if media_type == allowed[0]:
        return []
    place = f"{where}: Content-Type"
    if media_type in allowed[1:]:
        return [Finding("tolerated", place, allowed[0], f"{media_type}, which it allows")]
    return [Finding("deviates", place, " or ".join(allowed), str(media_type))]


# --- an answer to an operation that takes no body -----------------------------------------------

# How the client reads each such operation's 200: what a judge and the client must agree on.
READERS: dict[str, Callable[[httpx.Response], object]] = {BALANCE: parse_balance}


def judge_read(attempt: Attempt) -> Judged:
    """A 200 of an operation that takes no body, as the spec says: its content type, its body
    against the operation's schema with its tolerances, and whether the client reads it."""
    exchange = attempt.exchange
    assert exchange is not None
    operation = attempt.send.operation
    if exchange.status != 200:
        judged = judge_refusal(attempt, None)
        return Judged(judged.findings, answer_line(exchange))
    findings = _content_type(exchange, 200, operation)
    payload = as_json(exchange.body)
    if payload is NOT_JSON:
        got = show(exchange.body[:60].decode(errors="replace"))
        return Judged([*findings, Finding("deviates", "$", "a JSON body", got)], "200, not JSON")
    findings += differences(response_schema(operation, 200), payload)
    reader = READERS.get(operation)
    if reader is not None and not any(finding.kind == "deviates" for finding in findings):
        try:
            reader(exchange.response())
        except NovitaError as error:
            findings.append(Finding("deviates", "client", "a body the client reads", str(error)))
    fields = ", ".join(payload) if isinstance(payload, dict) else type(payload).__name__
    return Judged(findings, f"200: {fields}")


# --- a refusal ----------------------------------------------------------------------------------


def judge_refusal(attempt: Attempt, reasons: frozenset[str] | None) -> Judged:
    """An error answer as the spec says: the status its reason is documented under, the error
    envelope, a reason the spec knows (one of `reasons`, when given) and the exception the
    client maps it to."""
    exchange = attempt.exchange
    assert exchange is not None
    expected = _expected_statuses(reasons)
    if 200 <= exchange.status < 300:
        got = f"{exchange.status}: the request was accepted"
        return Judged([Finding("deviates", "status", expected, got)], got)
    findings = _content_type(exchange, exchange.status, attempt.send.operation)
    payload = as_json(exchange.body)
    if payload is NOT_JSON or not isinstance(payload, dict):
        got = show(exchange.body[:60].decode(errors="replace"))
        findings.append(Finding("deviates", "$", "the error envelope (JSON)", got))
        return Judged(findings, f"{exchange.status}, no error envelope")
    findings += differences(error_schema(), payload)
    code = payload.get("code")
    if type(code) is int and code != exchange.status:
        findings.append(
            Finding(
                "deviates", "$.code", f"{exchange.status} (the HTTP status, repeated)", str(code)
            )
        )
    reason = payload.get("reason")
    if isinstance(reason, str):
        findings += _reason(exchange.status, reason, reasons)
    if not any(finding.kind == "deviates" for finding in findings) and reasons:
        findings += _client_maps(exchange, reasons)
    return Judged(findings, answer_line(exchange))


def _expected_statuses(reasons: frozenset[str] | None) -> str:
    known = known_reasons()
    if not reasons:
        return "an error status"
    parts = []
    for name in sorted(reasons):
        statuses = (known[name].status, *known[name].also_seen_with)
        parts.append(f"{'/'.join(map(str, statuses))} {name}")
    return " or ".join(parts)


def _reason(status: int, reason: str, reasons: frozenset[str] | None) -> list[Finding]:
    known = known_reasons()
    entry = known.get(reason)
    if entry is None:
        spec = "a reason it knows (x-known-reasons)"
        if reasons:
            spec += f"; here {' or '.join(sorted(reasons))}"
        return [Finding("deviates", "$.reason", spec, repr(reason))]
    findings = []
    if reasons and reason not in reasons:
        kinds = {known[name].kind for name in reasons}
        spec = " or ".join(sorted(reasons))
        if entry.kind in kinds:
            got = f"{reason!r}, a reason of the same kind ({entry.kind}) it also knows"
            findings.append(Finding("tolerated", "$.reason", spec, got))
        else:
            findings.append(Finding("deviates", "$.reason", spec, f"{reason!r} ({entry.kind})"))
    if status == entry.status:
        return findings
    if status in entry.also_seen_with:
        got = f"{status}, under which it has also seen {reason}"
        return [*findings, Finding("tolerated", "status", f"{entry.status} for {reason}", got)]
    return [*findings, Finding("deviates", "status", f"{entry.status} for {reason}", str(status))]


def _client_maps(exchange: Exchange, reasons: frozenset[str]) -> list[Finding]:
    """Whether the client raises the exception the expected reasons call for."""
    wanted = {error_class(name) for name in reasons}
    raised = type(status_error(exchange.response()))
    if raised in wanted:
        return []
    names = " or ".join(sorted(cls.__name__ for cls in wanted))
    return [Finding("deviates", "client", f"the client to raise {names}", raised.__name__)]


def _content_type(exchange: Exchange, status: int, operation_id: str = GENERATE) -> list[Finding]:
    """The media type the spec documents for this status of the operation (an undocumented
    status: JSON, which every answer of the spec is)."""
    entry = operation(operation_id).body["responses"].get(str(status))
    documented = list(resolve(entry).get("content", {})) if entry else ["application/json"]
    if exchange.media_type in documented:
        return []
    expected = " or ".join(documented)
    return [Finding("deviates", "header Content-Type", expected, str(exchange.media_type))]
