"""Replaying a VCR.py cassette through the client, without the network: every 200 from the API
must parse, every error must map to the exception its reason (or, for a reason the spec does not
know, its status) calls for, and every image must be the whole image its request asked for.

The expected exceptions are written out here, not taken from the client's own table, so that a
client mapping an answer to the wrong exception fails the replay.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from novita_flux import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from novita_flux._base_client import parse_generation
from novita_flux._errors import status_error
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, dimensions, incomplete, sniff
from novita_flux._spec import GENERATE, known_reasons, operation, operations
from novita_flux.verify._judge import READERS

# Which operation of the spec a recorded request called, by its method and path.
OPERATIONS_BY_ROUTE = {(op.method, op.path): key for key, op in operations().items()}

EXCEPTION_FOR_KIND: dict[str, type[APIStatusError]] = {
    "bad_request": BadRequestError,
    "authentication": AuthenticationError,
    "permission": PermissionDeniedError,
    "not_found": NotFoundError,
    "rate_limit": RateLimitError,
    "server": InternalServerError,
}
EXCEPTION_FOR_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def load(path: Path) -> dict[str, Any]:
    cassette: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert cassette["version"] == 1
    assert cassette["interactions"], f"{path.name} holds no interaction"
    return cassette


def response_of(interaction: dict[str, Any]) -> httpx.Response:
    request, response = interaction["request"], interaction["response"]
    headers = [(name, value) for name, values in response["headers"].items() for value in values]
    body = response["body"]["string"]
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(
        response["status"]["code"],
        headers=headers,
        content=content,
        request=httpx.Request(request["method"], request["uri"]),
    )


def expected_exception(payload: Any, status: int) -> type[APIStatusError]:
    reason = payload.get("reason") if isinstance(payload, dict) else None
    known = known_reasons().get(reason) if isinstance(reason, str) else None
    if known is not None:
        return EXCEPTION_FOR_KIND[known.kind]
    if status >= 500:
        return InternalServerError
    return EXCEPTION_FOR_STATUS.get(status, APIStatusError)


def replay(path: Path) -> list[str]:
    """Check every interaction of the cassette; return what was checked, one line each."""
    checked = []
    size: tuple[Any, Any] | None = None
    for interaction in load(path)["interactions"]:
        request = interaction["request"]
        response = response_of(interaction)
        called = OPERATIONS_BY_ROUTE.get((request["method"].upper(), urlsplit(request["uri"]).path))
        if called == GENERATE:
            body = json.loads(request["body"]) if request["body"] else {}
            fields = body if isinstance(body, dict) else {}
            size = (fields.get("width"), fields.get("height"))
            checked.append(_api_answer(response, fields))
        elif called is not None:
            checked.append(_read_answer(called, response))
        else:
            checked.append(_image(response, size))
    return checked


def _read_answer(operation_id: str, response: httpx.Response) -> str:
    """An operation that takes no body, read as the client reads it."""
    if not response.is_success:
        error = status_error(response, billable=not operation(operation_id).free)
        return f"{response.status_code} {error.reason} -> {type(error).__name__}"
    read = READERS[operation_id](response)
    return f"200 read: {type(read).__name__}"


def _api_answer(response: httpx.Response, fields: dict[str, Any]) -> str:
    payload = json.loads(response.content)
    if response.is_success:
        request = {"seed": 0, "response_image_type": "png", **fields}
        generation = parse_generation(response, request, Decimal(0), datetime.now(UTC))
        assert generation.task_id == payload["task"]["task_id"]
        assert len(generation.images) == len(payload["images"])
        if type(fields.get("image_num")) is int:
            assert len(generation.images) == fields["image_num"]
        return f"200 parsed: task {generation.task_id}, {len(generation.images)} image(s)"
    error = status_error(response)
    wanted = expected_exception(payload, response.status_code)
    assert type(error) is wanted, f"{type(error).__name__} raised; {wanted.__name__} expected"
    assert error.status_code == response.status_code
    assert error.reason == payload.get("reason")
    return f"{response.status_code} {error.reason} -> {type(error).__name__}"


def _image(response: httpx.Response, size: tuple[Any, Any] | None) -> str:
    assert response.status_code == 200, response.status_code
    data = response.content
    kind = sniff(data[:HEAD_BYTES])
    assert kind is not None, data[:8]
    assert incomplete(kind, data[:HEAD_BYTES], data[-TAIL_BYTES:], len(data)) is None
    if size is not None and all(type(side) is int for side in size):
        assert dimensions(data) == size
    return f"image: a whole {kind} of {dimensions(data)}"
