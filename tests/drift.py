"""Servers that drift from the spec in one deliberate way each: the reference server behind a
small ASGI wrapper that rewrites a request on its way in, or an answer or an image on its way
out. `novita-flux verify` must name each drift where it happens."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from PIL import Image

from novita_flux._spec import GENERATE, operation
from novita_flux.testing import ReferenceServer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# (the request's JSON body) -> the body the reference server gets
RequestRewrite = Callable[[Any], Any]
# (the request's JSON body) -> (status, JSON payload) to answer instead, or None to pass it on
RequestAnswer = Callable[[Any], "tuple[int, Any] | None"]
# (status, JSON payload, the request's headers) -> the payload to send instead
AnswerRewrite = Callable[[int, Any, dict[str, str]], Any]
ImageRewrite = Callable[[bytes], bytes]
# (the image link's query string) -> (status, body) to answer instead, or None to pass it on
ImageAnswer = Callable[[str], "tuple[int, bytes] | None"]


class Drift:
    """The reference app with one thing changed."""

    def __init__(
        self,
        app: Any,
        *,
        request: RequestRewrite | None = None,
        answer_first: RequestAnswer | None = None,
        answer: AnswerRewrite | None = None,
        image: ImageRewrite | None = None,
        image_first: ImageAnswer | None = None,
    ) -> None:
        self.app = app
        self.state = app.state  # ReferenceServer reaches faults and the image host through it
        self.request = request
        self.answer_first = answer_first
        self.answer = answer
        self.image = image
        self.image_first = image_first

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = scope["path"] == operation(GENERATE).path
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if is_api and (self.request or self.answer_first):
            raw = await _body(receive)
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if self.answer_first is not None and body is not None:
                early = self.answer_first(body)
                if early is not None:
                    await _send_json(send, *early)
                    return
            if self.request is not None and body is not None:
                raw = json.dumps(self.request(body)).encode()
            scope = dict(scope, headers=_with_length(scope["headers"], len(raw)))
            receive = _replaying(raw, receive)
        if not is_api and self.image_first is not None:
            early = self.image_first(scope["query_string"].decode("latin-1"))
            if early is not None:
                await _send(send, early[0], early[1], b"application/xml")
                return
        rewrite: Callable[[int, bytes], bytes] | None = None
        if is_api and self.answer is not None:
            answer = self.answer

            def rewrite(status: int, data: bytes) -> bytes:
                return json.dumps(answer(status, json.loads(data), headers)).encode()

        elif not is_api and self.image is not None:
            image = self.image

            def rewrite(status: int, data: bytes) -> bytes:
                return image(data) if status == 200 else data

        if rewrite is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _rewriting(send, rewrite))


class DriftingServer(ReferenceServer):
    """ReferenceServer whose app drifts as `Drift(**drift)` says."""

    def __init__(self, *, api_key: str = "test-key", **drift: Any) -> None:
        super().__init__(api_key=api_key)
        self.app = Drift(self.app, **drift)  # type: ignore[assignment]


# --- the drifts ---------------------------------------------------------------------------------


def renamed_image_url(status: int, payload: Any, headers: dict[str, str]) -> Any:
    """`images[].image_url` is sent as `images[].url`."""
    for image in payload.get("images", ()) if status == 200 else ():
        image["url"] = image.pop("image_url")
    return payload


def float_string_ttl(status: int, payload: Any, headers: dict[str, str]) -> Any:
    """`image_url_ttl` as "3600.0", a string that is not one of digits."""
    for image in payload.get("images", ()) if status == 200 else ():
        image["image_url_ttl"] = f"{float(image['image_url_ttl'])}"
    return payload


def undocumented_reason(status: int, payload: Any, headers: dict[str, str]) -> Any:
    """Invalid requests are refused with a reason the spec does not know."""
    if payload.get("reason") == "INVALID_REQUEST_BODY":
        payload["reason"] = "PARAMETER_INVALID"
    return payload


def refuses_most_steps(body: Any) -> tuple[int, Any] | None:
    """A valid request (steps at its documented maximum) is refused with a 400."""
    if isinstance(body, dict) and body.get("steps") == 100:
        envelope = {
            "code": 400,
            "reason": "INVALID_REQUEST_BODY",
            "message": "steps must be in [1, 50]",
            "metadata": {},
        }
        return 400, envelope
    return None


def wider_images(data: bytes) -> bytes:
    """Every image comes back twice as wide as asked for."""
    picture = Image.open(io.BytesIO(data))
    kind = picture.format or "PNG"
    wider = picture.resize((picture.width * 2, picture.height))
    out = io.BytesIO()
    wider.save(out, kind)
    return out.getvalue()


def ignores_image_type(body: Any) -> Any:
    """The image-type field is ignored: every image is the default type."""
    if isinstance(body, dict):
        body.pop("response_image_type", None)
    return body


def echoes_the_key(status: int, payload: Any, headers: dict[str, str]) -> Any:
    """Error messages quote the Authorization header, key and all, and 200s carry it in a
    field of their own: a recording must not keep it anywhere."""
    auth = headers.get("authorization", "")
    if status != 200:
        payload["message"] = f"{payload.get('message', '')} (sent with {auth})"
    else:
        payload["debug"] = {"authorization": auth}
    return payload


def quotes_the_signature(query: str) -> tuple[int, bytes] | None:
    """Every image link is refused the way S3 refuses a bad signature: with an error page that
    quotes the signature (and the whole query) back."""
    signature = next(item for item in query.split("&") if item.startswith("signature="))
    xml = (
        "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated "
        "does not match the signature you provided.</Message><SignatureProvided>"
        f"{signature.partition('=')[2]}</SignatureProvided><CanonicalQueryString>{query}"
        "</CanonicalQueryString></Error>"
    )
    return 403, xml.encode()


# --- ASGI plumbing ------------------------------------------------------------------------------


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replaying(data: bytes, original: Receive) -> Receive:
    """The body (rewritten) once; then what the server itself says (it waits for a disconnect,
    which is how the app tells a client still there from one that has gone)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return {"type": "http.request", "body": data, "more_body": False}

    return receive


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def _rewriting(send: Send, rewrite: Callable[[int, bytes], bytes]) -> Send:
    start: Message = {}
    chunks: list[bytes] = []

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        data = rewrite(start["status"], b"".join(chunks))
        headers = _with_length(list(start.get("headers", [])), len(data))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    return sending


async def _send_json(send: Send, status: int, payload: Any) -> None:
    await _send(send, status, json.dumps(payload).encode(), b"application/json")


async def _send(send: Send, status: int, data: bytes, media_type: bytes) -> None:
    headers = [(b"content-type", media_type), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data, "more_body": False})
