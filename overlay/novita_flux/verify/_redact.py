"""What must never be kept: the API key, wherever a server may echo it, and the query strings of
signed links (the signature is a credential for as long as the link lives).

Task ids, paths and the names of query parameters are kept: they say what happened without
granting anything.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

import attrs

from novita_flux.verify._exchange import Attempt, Exchange

KEY_PLACEHOLDER: Final = "<API key>"
REDACTED: Final = "REDACTED"
_URL_WITH_QUERY: Final = re.compile(r"""https?://[^\s"'<>?#]+\?[^\s"'<>#]*""")


class Redactor:
    """Removes the key and signed query strings from text, bytes, parsed JSON and exchanges.

    The key is looked for as it is and as a server may have escaped it (inside a JSON string, or
    percent-encoded in a URL), and removed before anything is shortened for display: a key cut
    in half is still half a key."""

    def __init__(self, secret: str) -> None:
        forms = {secret, json.dumps(secret)[1:-1], quote(secret, safe="")} if secret else set()
        self._forms = sorted(forms, key=len, reverse=True)

    def __repr__(self) -> str:
        return "<Redactor key=****>"

    def holds_secret(self, text: str | bytes) -> bool:
        if isinstance(text, bytes):
            return any(form.encode() in text for form in self._forms)
        return any(form in text for form in self._forms)

    def text(self, text: str) -> str:
        """The text without the key, and with the query of every link in it redacted."""
        for form in self._forms:
            text = text.replace(form, KEY_PLACEHOLDER)
        return _URL_WITH_QUERY.sub(lambda match: redact_url(match.group()), text)

    def data(self, data: bytes) -> bytes:
        """The bytes without the key (links are left whole: an image may still be fetched)."""
        for form in self._forms:
            data = data.replace(form.encode(), KEY_PLACEHOLDER.encode())
        return data

    def json(self, value: Any) -> Any:
        """A parsed JSON value with every string in it (keys too) passed through text()."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.json(item) for key, item in value.items()}
        return value

    def exchange(self, exchange: Exchange) -> Exchange:
        """The exchange with the key out of everything the server sent back (and out of the
        body sent, should a probe ever carry it)."""
        return attrs.evolve(
            exchange,
            request_body=self.data(exchange.request_body),
            headers=tuple((name, self._header(value)) for name, value in exchange.headers),
            body=self.data(exchange.body),
        )

    def attempt(self, attempt: Attempt) -> Attempt:
        exchange = None if attempt.exchange is None else self.exchange(attempt.exchange)
        images = tuple(
            attrs.evolve(fetch, hops=tuple(self.exchange(hop) for hop in fetch.hops))
            for fetch in attempt.images
        )
        failure = None if attempt.failure is None else self.text(attempt.failure)
        return attrs.evolve(attempt, exchange=exchange, images=images, failure=failure)

    def _header(self, value: str) -> str:
        for form in self._forms:
            value = value.replace(form, KEY_PLACEHOLDER)
        return value


def redact_url(url: str) -> str:
    """The link with the value of every query parameter replaced (names kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("?")[0] + "?" + REDACTED
    if not parts.query:
        return url
    names = [item.partition("=")[0] for item in parts.query.split("&")]
    query = "&".join(f"{name}={REDACTED}" for name in names)
    return urlunsplit(parts._replace(query=query))
