"""JSON answers of the reference server: the spec's error envelope, and the bodies it wraps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse

from novita_flux._spec import known_reasons


def json_text(payload: object) -> str:
    # ASCII escapes keep a lone surrogate from a request (JSON can carry "\ud800") encodable.
    return json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(json_text(payload), status, headers, media_type="application/json")


def gateway_page(status: int) -> Response:
    """What a proxy in front of an API sends when it cannot vouch for what happened behind it."""
    text = f"<html><head><title>{status}</title></head><body><h1>{status}</h1></body></html>"
    return Response(text, status, media_type="text/html")


def dripping(content: bytes, interval: float, media_type: str) -> Response:
    """A 200 whose body arrives one byte every `interval` seconds: every read gets something,
    so no read timeout ever fires."""

    async def drip() -> AsyncIterator[bytes]:
        for at in range(len(content)):
            yield content[at : at + 1]
            await asyncio.sleep(interval)

    headers = {"Content-Length": str(len(content))}
    return StreamingResponse(drip(), 200, headers, media_type=media_type)


def error_response(
    reason: str,
    message: str,
    *,
    status: int | None = None,
    metadata: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error envelope; the status is the spec's for a known reason unless given."""
    code = status if status is not None else known_reasons()[reason].status
    envelope = {
        "code": code,
        "reason": reason,
        "message": message,
        "metadata": dict(metadata or {}),
    }
    return json_response(envelope, code, headers)
