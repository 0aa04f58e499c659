"""Sending a probe's requests exactly as planned, and fetching the images they link to.

Probes send what the client never would (values out of range, the wrong type, no key), so the
body goes out as planned, unchecked. Everything else is the client's own machinery: its
connection pool, its deadline on each whole exchange, the key added only for the API's origin,
and image requests that carry nothing but the headers any download needs.

An Exchange keeps what was sent and what came back, never the key: the Authorization header is
replaced by a word saying what it carried before anything is stored.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, Self

import attrs
import httpx

from novita_flux import _deadline, _retry
from novita_flux._client import FluxSchnell
from novita_flux._constants import MAX_IMAGE_BYTES
from novita_flux._errors import ImageDownloadError
from novita_flux._images import next_hop
from novita_flux.verify._probes import WRONG_KEY, Auth, Send

# What the Authorization header of each kind of request carried, as stored.
AUTHORIZATION: Final[dict[Auth, str]] = {
    "key": "the API key (not stored)",
    "none": "no Authorization header",
    "empty": "Bearer with no key",
    "wrong": f"Bearer {WRONG_KEY} (not a key)",
}
IMAGE_AUTHORIZATION: Final = "no Authorization header (an image link needs no key)"


@attrs.frozen
class Exchange:
    """One HTTP request and its answer, without the API key."""

    method: str
    url: str
    request_headers: tuple[tuple[str, str], ...]
    request_body: bytes
    authorization: str
    status: int
    reason_phrase: str
    headers: tuple[tuple[str, str], ...]  # as received; the body below is decoded
    body: bytes
    seconds: float

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ", ".join(values) if values else None

    @property
    def media_type(self) -> str | None:
        value = self.header("content-type")
        return None if value is None else value.partition(";")[0].strip().lower()

    def response(self) -> httpx.Response:
        """The answer as an httpx.Response, for the client's own parser and error mapper."""
        request = httpx.Request(self.method, self.url)
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-encoding"]
        return httpx.Response(self.status, headers=headers, content=self.body, request=request)


@attrs.frozen
class ImageFetch:
    """The download of one image a 200 linked to: every hop, or why it failed."""

    index: int
    url: str
    hops: tuple[Exchange, ...] = ()
    failure: str | None = None


@attrs.frozen
class Attempt:
    """One planned request, its answer (None when none came, with `failure` saying why) and the
    images the answer linked to."""

    send: Send
    exchange: Exchange | None = None
    failure: str | None = None
    images: tuple[ImageFetch, ...] = ()

    @property
    def status(self) -> int | None:
        return None if self.exchange is None else self.exchange.status


class Unanswered(Exception):
    """No answer came: the connection failed, or the exchange took longer than its timeout.

    `sent` says whether the request may have reached the server (and so may have been billed)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Transport:
    """The client's connections, sending probe requests as planned."""

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        allow_insecure: bool = False,
    ) -> None:
        # The client refuses a bad key or base URL, plain http off this machine included.
        self._flux = FluxSchnell(
            api_key=api_key, base_url=base_url, timeout=timeout, allow_insecure=allow_insecure
        )
        self._seconds = _deadline.exchange_seconds(self._flux.timeout)

    @property
    def base_url(self) -> str:
        return self._flux.base_url

    def post(self, send: Send) -> Exchange:
        """Send one planned request to its operation; raise Unanswered when no answer came."""
        request = self._flux.build_request(send.operation, send.body)
        if send.auth == "empty":
            request.headers["Authorization"] = "Bearer"
        elif send.auth == "wrong":
            request.headers["Authorization"] = f"Bearer {WRONG_KEY}"
        return self._exchange(request, send.auth == "key", AUTHORIZATION[send.auth])

    def fetch(self, url: str) -> list[Exchange]:
        """GET an image link with no key, following redirects the way the client does (a bare
        request for every hop); every hop is returned, the answer last."""
        hops: list[Exchange] = []
        target: str | httpx.URL = url
        while True:
            try:
                request = self._flux.build_image_request(target)
            except ImageDownloadError as error:  # a link no request can go to: none left
                raise Unanswered(str(error), sent=False) from None
            hop = self._exchange(request, False, IMAGE_AUTHORIZATION)
            hops.append(hop)
            after = next_hop(request.url, hop.status, httpx.Headers(hop.headers), len(hops) - 1)
            if after is None:
                return hops
            target = after

    def _exchange(self, request: httpx.Request, authenticate: bool, authorization: str) -> Exchange:
        sent_headers = tuple(
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() != "authorization"
        )
        body = request.read()
        started = time.perf_counter()
        try:
            with _deadline.deadline_in(self._seconds):
                response = self._flux.send(request, authenticate=authenticate, stream=True)
                try:
                    content = _read_capped(response)
                finally:
                    response.close()
        except httpx.TransportError as error:
            sent = not isinstance(error, _retry.UNSENT_ERRORS)
            late = isinstance(error, httpx.TimeoutException)
            what = "took longer than its timeout" if late else "failed"
            where = f"{request.method} {request.url.copy_with(query=None)}"
            raise Unanswered(
                f"{where} {what}: {type(error).__name__}: {error}", sent=sent
            ) from None
        return Exchange(
            method=request.method,
            url=str(request.url),
            request_headers=sent_headers,
            request_body=body,
            authorization=authorization,
            status=response.status_code,
            reason_phrase=response.reason_phrase,
            headers=tuple(response.headers.multi_items()),
            body=content,
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        self._flux.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_IMAGE_BYTES:
            raise httpx.ReadError(f"the answer is larger than {MAX_IMAGE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def as_json(data: bytes) -> Any:
    """The parsed body, or NOT_JSON."""
    try:
        return json.loads(data)
    except ValueError:
        return NOT_JSON


class _NotJson:
    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Final[Any] = _NotJson()
