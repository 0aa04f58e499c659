"""Pre-signed image links: stateless, so an image is rendered only when its link is fetched.

A link carries everything the image depends on, an expiry (unix seconds) and an HMAC of both
under a secret only the app knows, like an S3 pre-signed URL:
`/images/<task_id>/<index>.<type>?prompt=<sha256 of the prompt>&width=..&height=..&seed=..
&steps=..&caption=<start of the prompt>&expires=<unix seconds>&signature=<HMAC-SHA256 hex>`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

IMAGE_ROUTE = "/images/{task_id}/{name}"
NEVER = 0  # the `expires` of a link issued with a TTL of 0: the API states no expiry
CAPTION_LENGTH = 48  # characters of the prompt drawn on the image


@dataclass(frozen=True)
class ImageLink:
    task_id: str
    index: int
    image_type: str
    width: int
    height: int
    seed: int
    steps: int
    prompt_hash: str
    caption: str
    expires: int

    @property
    def path(self) -> str:
        return f"/images/{self.task_id}/{self.index}.{self.image_type}"

    def query(self) -> dict[str, str]:
        fields = ("width", "height", "seed", "steps", "caption", "expires")
        return {"prompt": self.prompt_hash, **{name: str(getattr(self, name)) for name in fields}}


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


def caption(prompt: str) -> str:
    """The start of the prompt, printable and valid UTF-8 (a lone surrogate cannot be sent)."""
    text = prompt[:CAPTION_LENGTH]
    return "".join(char if char.isprintable() else " " for char in text)


def signed_url(secret: bytes, base_url: str, link: ImageLink) -> str:
    query = link.query()
    query["signature"] = _signature(secret, link.path, query.items())
    return f"{base_url.rstrip('/')}{link.path}?{urlencode(query, quote_via=quote)}"


def verified_link(secret: bytes, path: str, items: list[tuple[str, str]]) -> ImageLink | None:
    """The link a request names, if its signature is ours; None for anything else."""
    signatures = [value for key, value in items if key == "signature"]
    signed = [(key, value) for key, value in items if key != "signature"]
    if len(signatures) != 1 or len({key for key, _ in signed}) != len(signed):
        return None
    if not hmac.compare_digest(
        signatures[0].encode("latin-1", "replace"), _signature(secret, path, signed).encode()
    ):
        return None
    task_id, name = path.removeprefix("/images/").split("/")
    index, _, image_type = name.partition(".")
    query = dict(signed)
    return ImageLink(
        task_id=task_id,
        index=int(index),
        image_type=image_type,
        width=int(query["width"]),
        height=int(query["height"]),
        seed=int(query["seed"]),
        steps=int(query["steps"]),
        prompt_hash=query["prompt"],
        caption=query["caption"],
        expires=int(query["expires"]),
    )


def _signature(secret: bytes, path: str, items: Iterable[tuple[str, str]]) -> str:
    canonical = path + "?" + urlencode(sorted(items), quote_via=quote)
    return hmac.new(secret, canonical.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
