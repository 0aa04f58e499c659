"""Reading what can still be read from a 200 whose body breaks the contract.

The call was most likely billed, so its task id and every image link in it are worth more than
the contract: they are read here as leniently as can be (a TTL as a number or any numeral, an
image type of any spelling), and travel on the ResponseValidationError so that nothing paid for
is lost.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from novita_flux._models import GeneratedImage, link_expiry
from novita_flux._spec import canonical_image_type


def salvage(
    payload: Any, sent: datetime, requested_type: str
) -> tuple[str | None, list[GeneratedImage]]:
    """(the task id, every image whose link could be read) of a parsed 200 body."""
    if not isinstance(payload, dict):
        return None, []
    task = payload.get("task")
    task_id = task.get("task_id") if isinstance(task, dict) else payload.get("task_id")
    items = payload.get("images")
    images: list[GeneratedImage] = []
    for item in items if isinstance(items, list) else ():
        image = _image(item, sent, requested_type, len(images))
        if image is not None:
            images.append(image)
    return (task_id if isinstance(task_id, str) else None), images


def _image(item: Any, sent: datetime, requested_type: str, index: int) -> GeneratedImage | None:
    fields = item if isinstance(item, dict) else {"image_url": item}
    url = fields.get("image_url")
    if not (isinstance(url, str) and _is_link(url)):
        return None
    ttl = lenient_ttl(fields.get("image_url_ttl"))
    named = fields.get("image_type")
    image_type = canonical_image_type(named) if isinstance(named, str) else requested_type
    named_fields = ("image_url", "image_url_ttl", "image_type")
    return GeneratedImage(
        url=url,
        ttl=ttl or 0,
        # Unknown: no expiry is assumed, so the link is tried; the host says if it expired.
        type=image_type if image_type in ("png", "jpeg", "webp") else requested_type,
        expires_at=None if ttl is None else link_expiry(sent, ttl),
        index=index,
        extra={key: value for key, value in fields.items() if key not in named_fields},
    )


def lenient_ttl(value: Any) -> int | None:
    """Seconds from anything that reads as a non-negative number: 3600, 3600.0, "3600",
    " 3600.5 "; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _is_link(text: str) -> bool:
    try:
        parts = urlsplit(text)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)
