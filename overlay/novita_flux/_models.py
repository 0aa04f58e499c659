"""What a generation returns: small frozen value objects."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs


@attrs.frozen
class GeneratedImage:
    """One generated image: a pre-signed link valid until `expires_at`."""

    url: str
    ttl: int  # seconds the link was valid for when the API answered
    type: str  # png, webp or jpeg
    expires_at: datetime  # timezone-aware: when the request was sent + ttl (never late)
    index: int = 0  # position within its generation

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at


@attrs.frozen
class Generation:
    """The result of one call: the task, its images, and exactly what was asked and paid."""

    task_id: str
    images: list[GeneratedImage]
    seed: int  # the seed actually sent
    request: dict[str, Any] = attrs.field(repr=False)  # the exact JSON body sent
    cost: Decimal  # estimated price in USD

    @property
    def prompt(self) -> str:
        prompt: str = self.request["prompt"]
        return prompt
