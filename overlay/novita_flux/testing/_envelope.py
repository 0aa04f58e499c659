"""JSON answers of the reference server: the spec's error envelope, and the bodies it wraps."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from novita_flux._spec import known_reasons

logger = logging.getLogger("novita_flux.testing")


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


def dripping(content: bytes, interval: float, media_type: str) -> StreamingResponse:
    """A 200 whose body arrives one byte every `interval` seconds: every read gets something,
    so no read timeout ever fires."""

    async def drip() -> AsyncIterator[bytes]:
        for at in range(len(content)):
            yield content[at : at + 1]
            await asyncio.sleep(interval)

    headers = {"Content-Length": str(len(content))}
    return StreamingResponse(drip(), 200, headers, media_type=media_type)


class Delivery(Response):
    """An answer that calls `delivered` as the last of it goes to a client still there, and not
    when the client hung up first: the server's way to tell "paid and heard" from "paid and
    never heard".

    The server drops what it sends to a client that has gone, without a word, so the client is
    asked whether it is still there just before the last of the answer goes; a streamed answer
    counts only if its stream ran to its end (the server cancels it when the client goes)."""

    def __init__(self, response: Response, request: Request, delivered: Callable[[], None]) -> None:
        # Not Response.__init__: this answer is `response`, sent as it is.
        self.status_code = response.status_code
        self.response = response
        self.request = request
        self.delivered = delivered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await self.request.is_disconnected():
            self._gone()
            return
        finished = False

        async def last_part_checked(message: Any) -> None:
            nonlocal finished
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last:
                if await self.request.is_disconnected():
                    return
                # Recorded before the last part goes: once it has gone, the client may act on
                # the answer (and a test read `delivered`) before this coroutine runs again.
                finished = True
                self.delivered()
            await send(message)

        await self.response(scope, receive, last_part_checked)
        if not finished:
            self._gone()

    def _gone(self) -> None:
        # Ordinary for a test server (a timeout, Ctrl-C): one line, as _app says of the rest.
        logger.warning(
            "client disconnected before the answer to %s %s",
            self.request.method,
            self.request.url.path,
        )


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
