"""200 bodies that break the contract in one known way each, for testing a client's guard."""

from __future__ import annotations

import copy
import json
from typing import Any

from starlette.responses import Response

from novita_flux.testing._faults import MalformedKind

NOT_AN_IMAGE_TYPE = "gif"  # any name outside the spec's ImageType enum


def malformed_response(kind: MalformedKind, payload: dict[str, Any]) -> Response:
    text = json.dumps(payload)
    if kind == "not_json":
        # What a proxy in front of an API sends when the API behind it is down.
        text = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    elif kind == "truncated_json":
        text = text[: len(text) // 2]
    else:
        broken = copy.deepcopy(payload)
        if kind == "missing_field":
            del broken["images"]
        for image in broken.get("images", ()):
            if kind == "wrong_type":  # neither an integer nor a string of digits
                image["image_url_ttl"] = int(image["image_url_ttl"]) + 0.5
            elif kind == "unknown_image_type":
                image["image_type"] = NOT_AN_IMAGE_TYPE
        text = json.dumps(broken)
    return Response(text, 200, media_type="application/json")
