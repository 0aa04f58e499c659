"""Recordings that become tests: every exchange of a probe written as a VCR.py cassette.

One file per probe, `<probe id>.yaml`, in the format VCR.py (and pytest-recording) read: a
top-level `interactions:` list and `version: 1`; each interaction a `request` (method, uri,
body, headers) and a `response` (status code and message, headers as lists, body string).
What the format has no room for sits in keys VCR.py ignores: `x_source` and `x_probe` at the
top, `x_authorization` beside each request (what its Authorization header carried).

Redacted before anything is written (see _redact): no Authorization header, the key nowhere
(a server that echoes it gets it replaced), no cookies, the query of every signed link replaced
in URIs, headers and JSON bodies alike; task ids are kept. Bodies are stored decoded, so
`content-encoding` is dropped and `content-length` is the stored body's. A text that still holds
the key after all that is never written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from novita_flux._images import write_atomically
from novita_flux._version import __version__
from novita_flux.verify._exchange import Attempt, Exchange
from novita_flux.verify._probes import Probe
from novita_flux.verify._redact import REDACTED, Redactor, redact_url
from novita_flux.verify._report import ProbeResult
from novita_flux.verify._yaml import dump

# Headers never kept: credentials, and what describes the body as sent rather than as stored.
DROPPED_HEADERS: Final = frozenset(
    {"authorization", "cookie", "set-cookie", "proxy-authorization", "content-encoding"}
    | {"transfer-encoding"}
)

# Query values shorter than this (a width, an expiry in seconds) are not credentials, and would
# turn every number in a body into REDACTED.
MIN_ECHO: Final = 16


class CassetteHoldsSecret(RuntimeError):
    """A cassette still held the API key after redaction; it was not written."""


class Recorder:
    """Writes one cassette per probe into `directory`."""

    def __init__(self, directory: Path, redactor: Redactor, base_url: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._redactor = redactor
        self._base_url = base_url

    def write(self, probe: Probe, attempts: Sequence[Attempt], result: ProbeResult) -> Path:
        interactions = []
        for attempt in attempts:
            if attempt.exchange is not None:
                interactions.append(self._interaction(attempt.exchange))
            for fetch in attempt.images:
                interactions += [self._interaction(hop) for hop in fetch.hops]
        when = datetime.now(UTC).replace(microsecond=0).isoformat()
        cassette = {
            "x_source": (
                f"novita-flux {__version__} verify against {self._base_url} at {when}: live "
                "exchanges, redacted (no Authorization, signed query strings replaced)"
            ),
            "x_probe": {
                "id": probe.id,
                "title": probe.title,
                "check": probe.check,
                "verdict": result.verdict,
                "summary": result.summary,
            },
            "interactions": interactions,
            "version": 1,
        }
        text = dump(cassette)
        if self._redactor.holds_secret(text):
            raise CassetteHoldsSecret(f"the cassette of {probe.id} still held the API key")
        path = self.directory / f"{probe.id}.yaml"
        write_atomically(path, [text.encode("utf-8")])
        return path

    def _interaction(self, exchange: Exchange) -> dict[str, Any]:
        redact = self._redactor
        # A storage host's error page may quote the signed query back (S3's SignatureDoesNotMatch
        # does): its values go wherever they are found, not only from the URI.
        echoes = _query_values(exchange.url)
        body = self._body(_without(exchange.body, echoes))
        headers = _headers(exchange.headers, redact)
        if "content-length" in {name.lower() for name in headers}:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            size = len(body.encode() if isinstance(body, str) else body)
            headers["content-length"] = [str(size)]
        request_body = exchange.request_body.decode("utf-8", "replace")
        return {
            "request": {
                "body": redact.text(request_body),
                "headers": _headers(exchange.request_headers, redact),
                "method": exchange.method,
                "uri": redact_url(redact.text(exchange.url)),
            },
            "response": {
                "status": {"code": exchange.status, "message": exchange.reason_phrase},
                "headers": headers,
                "body": {"string": body},
            },
            "x_authorization": exchange.authorization,
        }

    def _body(self, data: bytes) -> str | bytes:
        """JSON and other text as a string, with the key and signed queries redacted; anything
        else as bytes (the key replaced should it be in there)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return self._redactor.data(data)
        try:
            parsed = json.loads(text)
        except ValueError:
            return self._redactor.text(text)
        redacted = self._redactor.json(parsed)
        if redacted == parsed:
            return text
        return json.dumps(redacted, ensure_ascii=False, separators=(",", ":"))


def _query_values(url: str) -> list[str]:
    """The values of a link's query long enough to be credentials (a signature, a key id),
    as sent and as decoded."""
    values = set()
    for item in urlsplit(url).query.split("&"):
        value = item.partition("=")[2]
        values |= {value, unquote(value)}
    return sorted((value for value in values if len(value) >= MIN_ECHO), key=len, reverse=True)


def _without(data: bytes, values: list[str]) -> bytes:
    for value in values:
        data = data.replace(value.encode(), REDACTED.encode())
    return data


def _headers(items: Sequence[tuple[str, str]], redact: Redactor) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in items:
        if name.lower() not in DROPPED_HEADERS:
            headers.setdefault(name, []).append(redact.text(value))
    return headers
