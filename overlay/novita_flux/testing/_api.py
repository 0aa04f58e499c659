"""The generation: the key, the body, queued faults, the account's balance, the rate limit, then
the task runs (and is billed), the latency passes, and the links are answered.

Billing follows the API's rule (the spec's operation description): a call is billed once its
task runs, whether or not the client is still there to hear the answer. The task's exact price
(the spec's formula) is taken from the account (_account) then; a task the balance cannot pay for
in full is refused BILLING_BALANCE_NOT_ENOUGH, with the profile's status, and costs nothing.
So a task is billed the moment it starts, before the latency that stands for its run, and
`Faults.delivered` says which answers reached a client still connected: a client that hung up (a
timeout, a cancellation, a killed process) has paid for a task it never heard of, as it would
have with the real API.

Authentication comes before the body. Novita documents three reasons for a bad key (MISSING_API_KEY
400, FAILED_TO_AUTH 401, INVALID_API_KEY 403) but not which request earns which; this server gives
no Authorization header at all 401 FAILED_TO_AUTH and a key that is not the app's 403
INVALID_API_KEY, the statuses HTTP (and schemathesis's `ignored_auth` check) expect for missing
and wrong credentials, and keeps 400 MISSING_API_KEY for a header that carries no bearer key
("Bearer " with nothing after it, or another scheme).

Where the real API's behaviour is unknown, the server is the stricter choice, so a client that
passes against it works against the real one: the body must be sent as application/json.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import uuid
from typing import Any, NoReturn

from starlette.requests import Request
from starlette.responses import Response

from novita_flux._request import (
    as_validation_error,
    compiled_request_schema,
    field_schema,
    request_cost,
)
from novita_flux._schema import SchemaViolation, conform
from novita_flux.testing._envelope import (
    Delivery,
    dripping,
    error_response,
    gateway_page,
    json_response,
    json_text,
)
from novita_flux.testing._faults import QueuedFault
from novita_flux.testing._links import NEVER, ImageLink, caption, prompt_hash, signed_url
from novita_flux.testing._malformed import malformed_response
from novita_flux.testing._settings import Endpoint, Settings


def api_endpoint(settings: Settings) -> Endpoint:
    faults = settings.faults

    async def generate(request: Request) -> Response:
        faults.count_api_request()
        answer = await _answer(request)
        if faults.latency:  # every answer takes this long; a task runs meanwhile
            await asyncio.sleep(faults.latency)
        return answer

    async def _answer(request: Request) -> Response:
        denied = authenticate(request.headers.get("authorization"), settings)
        if denied is not None:
            return denied
        body = await read_body(request, settings)
        if isinstance(body, Response):
            return body
        now = settings.clock()
        fault = faults.next_fault()  # a queued fault comes before the per-minute limit
        if fault is not None and fault.status != 200:
            return planned_error(fault)
        price = request_cost(body)  # taken now; given back if the task does not run after all
        if not settings.account.charge(price):
            return settings.error(
                "BILLING_BALANCE_NOT_ENOUGH",
                f"billing balance not enough: the task costs ${price}",
            )
        wait = faults.admit(body["image_num"], now) if fault is None else None
        if wait is not None:
            settings.account.refund(price)  # the task never runs
            retry_after = (
                {"Retry-After": str(wait)} if settings.profile.retry_after_on_429 else None
            )
            return settings.error(
                "RATE_LIMIT_EXCEEDED",
                f"rate limit exceeded: at most {faults.images_per_minute} images per minute",
                headers=retry_after,
            )
        base_url = request.app.state.image_base_url or str(request.base_url)
        count = fault.images if fault is not None else None
        payload = generated(settings, body, now, base_url, count)
        task_id = payload["task"]["task_id"]
        faults.record_billed(
            task_id, body
        )  # the task runs now: billed, whatever becomes of the answer
        if fault is not None and fault.malformed is not None:
            response = malformed_response(fault.malformed, payload)
        elif fault is not None and fault.drip is not None:
            response = dripping(json_text(payload).encode(), fault.drip, "application/json")
        else:
            response = json_response(payload)
        return Delivery(response, request, lambda: faults.record_delivered(task_id))

    return generate


def authenticate(header: str | None, settings: Settings) -> Response | None:
    """None if the header carries the app's key; the error answer otherwise."""
    if header is None:
        return settings.error("FAILED_TO_AUTH", "failed to auth: no Authorization header")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return settings.error(
            "MISSING_API_KEY", "missing api key: expected Authorization: Bearer <API key>"
        )
    # Header values arrive decoded as latin-1, so this encoding gives back the bytes sent.
    if not hmac.compare_digest(token.encode("latin-1"), settings.api_key.encode()):
        return settings.error("INVALID_API_KEY", "invalid api key")
    return None


async def read_body(request: Request, settings: Settings) -> dict[str, Any] | Response:
    """The validated body, or the 400 that names the field, the value and the range."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        return settings.error(
            "INVALID_REQUEST_BODY",
            f"body: must be sent as application/json, not {media_type or 'no Content-Type'}",
            metadata={"field": "body"},
        )
    raw = await request.body()
    try:
        parsed = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError) as error:
        settings.faults.record_arrival(raw.decode("utf-8", "replace"))
        return settings.error(
            "INVALID_REQUEST_BODY", f"body: not valid JSON ({error})", metadata={"field": "body"}
        )
    settings.faults.record_arrival(parsed)
    try:
        body: dict[str, Any] = conform(compiled_request_schema(), parsed)
    except SchemaViolation as violation:
        invalid = as_validation_error(violation)
        metadata = {"field": invalid.field, "expected": invalid.expected}
        return settings.error("INVALID_REQUEST_BODY", str(invalid), metadata=metadata)
    return body


def planned_error(fault: QueuedFault) -> Response:
    if fault.bare:
        return gateway_page(fault.status)
    metadata = {"task_id": str(uuid.uuid4())} if fault.reason == "TASK_FAILED" else {}
    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
    return error_response(
        fault.reason, fault.message, status=fault.status, metadata=metadata, headers=headers
    )


def generated(
    settings: Settings, body: dict[str, Any], now: float, base_url: str, count: int | None = None
) -> dict[str, Any]:
    """The 200 body: one signed link per image (`count` of them instead of image_num when a
    fault asks); nothing is rendered until a link is fetched."""
    task_id = str(uuid.uuid4())
    image_type: str = (
        body.get("response_image_type") or field_schema("response_image_type")["default"]
    )
    ttl = settings.image_url_ttl
    profile = settings.profile
    links = [
        ImageLink(
            task_id=task_id,
            index=index,
            image_type=image_type,
            width=body["width"],
            height=body["height"],
            seed=body["seed"],
            steps=body["steps"],
            prompt_hash=prompt_hash(body["prompt"]),
            caption=caption(body["prompt"]),
            expires=math.ceil(now + ttl) if ttl else NEVER,
        )
        for index in range(body["image_num"] if count is None else count)
    ]
    images = [
        {
            "image_url": signed_url(settings.secret, base_url, link),
            "image_url_ttl": profile.ttl(ttl),
            "image_type": image_type,
        }
        for link in links
    ]
    return profile.decorate({"images": images, "task": {"task_id": task_id}}, body)


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON value")
