"""What a generation returns: small frozen value objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs


def link_expiry(sent: datetime, ttl: int) -> datetime | None:
    """When a link valid for `ttl` seconds from a response to a request sent at `sent` expires;
    None for a TTL of 0, which states no expiry."""
    if ttl == 0:
        return None
    try:
        return sent + timedelta(seconds=ttl)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def link_of(image: GeneratedImage) -> str:
    """`at URL until WHEN` (no `until` when the API stated no expiry): how a message tells where
    an image paid for can still be fetched, and for how long."""
    until = f" until {image.expires_at.isoformat()}" if image.expires_at else ""
    return f"at {image.url}{until}"


@attrs.frozen
class GeneratedImage:
    """One generated image: a pre-signed link, valid until `expires_at` when the API says so."""

    url: str
    ttl: int  # seconds the link was valid for when the API answered; 0: no expiry stated
    type: str  # png, webp or jpeg (the request's spelling, whatever case the answer used)
    # Timezone-aware: when the request was sent + ttl, so never later than the host's own
    # expiry. None when the API states no expiry (a TTL of 0).
    expires_at: datetime | None
    index: int = 0  # position within its generation
    # Fields of the image the spec does not name (e.g. `nsfw_detection_result`), kept as sent.
    extra: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and datetime.now(UTC) >= self.expires_at


@attrs.frozen
class Generation:
    """The result of one call: the task, its images, and exactly what was asked and paid.

    `images` holds what the answer held; `images_paid_for` is how many the call asked and paid
    for (the request's `image_num`). The API promises one image per image paid for: an answer
    with more or fewer is a contract deviation that the client logs as a warning on the
    `novita_flux` logger when it reads the answer, and keeps and saves all the same."""

    task_id: str
    images: list[GeneratedImage]
    seed: int  # the seed actually sent
    request: dict[str, Any] = attrs.field(repr=False)  # the exact JSON body sent
    cost: Decimal  # estimated price in USD
    # The whole 200 body as parsed from JSON, before any normalisation: every field the API
    # sent is here, named by the spec or not (`extra`, `videos`, `task.status`, ...).
    raw: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def prompt(self) -> str:
        prompt: str = self.request["prompt"]
        return prompt

    @property
    def images_paid_for(self) -> int:
        """How many images the call asked and paid for (`image_num`); `len(images)` is how many
        its answer held, and the two differ when the API answered short (or long)."""
        return int(self.request["image_num"])


def entry_of(image: GeneratedImage) -> dict[str, Any]:
    """An image as JSON, as the ledger, the manifest and a call's record keep it."""
    return {
        "url": image.url,
        "ttl": image.ttl,
        "type": image.type,
        "expires_at": image.expires_at.isoformat() if image.expires_at else None,
        "index": image.index,
        "extra": image.extra,
    }


def image_of(entry: dict[str, Any]) -> GeneratedImage:
    expires = entry.get("expires_at")
    return GeneratedImage(
        url=entry["url"],
        ttl=int(entry.get("ttl") or 0),
        type=entry["type"],
        expires_at=datetime.fromisoformat(expires) if expires else None,
        index=int(entry.get("index", 0)),
        extra=entry.get("extra") or {},
    )
