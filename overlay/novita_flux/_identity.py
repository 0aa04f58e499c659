"""Which request a batch line is: its content, never its position.

A line's key is a hash of its normalised request: the body the client would send, defaults
filled in, whole floats made integers, and the seed included only when the line gives one. The
n-th of several identical lines is a request of its own (`#n`), so two identical lines without a
seed still make two images, while moving, inserting or deleting other lines, comments or blank
lines changes no key. Editing a line makes a new request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from novita_flux._request import prepare_request


def normalised(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The request as the client would send it, without a drawn seed (ValidationError if the
    API would refuse it)."""
    body, _ = prepare_request(fields)
    return without_drawn_seed(fields, body)


def without_drawn_seed(fields: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The prepared body of `fields`, less the seed unless the fields chose it."""
    if fields.get("seed") is not None:
        return dict(body)
    return {name: value for name, value in body.items() if name != "seed"}


def canonical(request: Mapping[str, Any]) -> str:
    """The one JSON text of a request: keys sorted, no spaces, Unicode kept as it is."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: Mapping[str, Any], occurrence: int = 1) -> str:
    """The key of the `occurrence`-th line (1-based) asking for this normalised request."""
    digest = hashlib.sha256(canonical(request).encode(errors="surrogatepass")).hexdigest()[:32]
    return digest if occurrence == 1 else f"{digest}#{occurrence}"
