"""Helpers shared by the tests: the endpoint's URL and bodies shaped like the spec's."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image

from novita_flux import GeneratedImage, Generation, _faultpoints, _spec

API_URL = _spec.default_base_url() + _spec.operation(_spec.GENERATE).path
IMAGE_URL = "https://storage.example.com/out/task-1/{index}.{ext}?X-Amz-Signature=abc"
KEY = "sk-live-0123456789abcdef"


def encoded(image_type: str, size: tuple[int, int] = (3, 2)) -> bytes:
    """A whole, real image of this type: what a storage host serves."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buffer, {"jpeg": "JPEG"}.get(image_type, image_type))
    return buffer.getvalue()


MAGIC = {image_type: encoded(image_type) for image_type in ("png", "jpeg", "webp")}


def image_url(index: int = 0, image_type: str = "png") -> str:
    return IMAGE_URL.format(index=index, ext=image_type)


def success_body(
    image_num: int = 1, image_type: str = "png", ttl: int = 3600, task_id: str = "task-1"
) -> dict[str, Any]:
    return {
        "images": [
            {"image_url": image_url(i, image_type), "image_url_ttl": ttl, "image_type": image_type}
            for i in range(image_num)
        ],
        "task": {"task_id": task_id},
    }


def error_body(status: int, reason: str, message: str = "went wrong", **metadata: Any) -> dict:
    return {"code": status, "reason": reason, "message": message, "metadata": metadata}


class Sleeps(list[float]):
    """Records the delays the retry loop asks for, instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)

    async def async_call(self, seconds: float) -> None:
        self.append(seconds)


def generation_of(*types: str, ttl: int = 3600) -> Generation:
    """A generation already answered: one image of each type, links on the storage host."""
    expires = datetime.now(UTC) + timedelta(seconds=ttl)
    images = [GeneratedImage(image_url(i, t), ttl, t, expires, i) for i, t in enumerate(types)]
    request = {"prompt": "x", "width": 1024, "height": 1024, "steps": 4, "seed": 1}
    return Generation("task-1", images, 1, request, cost=0)  # type: ignore[arg-type]


@contextlib.contextmanager
def hooked(hook: _faultpoints.Hook) -> Iterator[None]:
    """Inside the block every fault point calls `hook` (tests/faults does this to children,
    which mutmut cannot see); the hook before it is put back after."""
    previous = _faultpoints.install(hook)
    try:
        yield
    finally:
        _faultpoints.install(previous)


def failing_at(errors: Mapping[str, BaseException]) -> _faultpoints.Hook:
    """A hook that raises, at each point named, the error given for it (a full disk, say)."""

    def fail(point: str) -> None:
        if point in errors:
            raise errors[point]

    return fail


def printed(code: str) -> str:
    """What a fresh Python process prints running `code` (what it imports is its own)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
