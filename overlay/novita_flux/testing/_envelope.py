"""JSON answers of the reference server: the spec's error envelope, and the bodies it wraps."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from novita_flux._spec import known_reasons


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # ASCII escapes keep a lone surrogate from a request (JSON can carry "\ud800") encodable.
    text = json.dumps(payload, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return Response(text, status, headers, media_type="application/json")


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
