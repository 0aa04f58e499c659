"""Receiving image bytes safely: signature and size checked as they stream, files published
atomically and never over a different image."""

from __future__ import annotations

import contextlib
import filecmp
import json
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from novita_flux._errors import ImageDownloadError, ImageExpiredError
from novita_flux._models import GeneratedImage, Generation

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_SIGNATURE_BYTES = 12


def sniff(head: bytes) -> str | None:
    """The image type its first bytes announce (PNG, JPEG or WebP), if any."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def check_not_expired(image: GeneratedImage) -> None:
    if datetime.now(UTC) >= image.expires_at:
        raise ImageExpiredError(
            f"image {image.index} expired at {image.expires_at.isoformat()} "
            f"(its link was valid for {image.ttl} s); generate it again"
        )


class ImageReceiver:
    """Feeds streamed chunks to a binary sink, refusing a body that is not the promised image."""

    def __init__(self, image: GeneratedImage, sink: IO[bytes], max_bytes: int) -> None:
        self.image = image
        self.sink = sink
        self.max_bytes = max_bytes
        self.size = 0
        self._head = b""

    def expect_length(self, header: str | None) -> None:
        if header is not None and header.isdigit() and int(header) > self.max_bytes:
            raise self._too_large(int(header))

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self._too_large(self.size)
        if len(self._head) < _SIGNATURE_BYTES:
            self._head += chunk[: _SIGNATURE_BYTES - len(self._head)]
            if len(self._head) == _SIGNATURE_BYTES:
                self._check_signature()
        self.sink.write(chunk)

    def finish(self) -> None:
        if len(self._head) < _SIGNATURE_BYTES:
            self._check_signature()

    def _check_signature(self) -> None:
        found = sniff(self._head)
        if found != self.image.type:
            what = f"a {found.upper()} image" if found else "not a PNG, JPEG or WebP image"
            raise ImageDownloadError(
                f"image {self.image.index} should be {self.image.type.upper()} but the storage "
                f"host sent {what} (first bytes {self._head[:8]!r})"
            )

    def _too_large(self, size: int) -> ImageDownloadError:
        return ImageDownloadError(
            f"image {self.image.index} is over the {self.max_bytes}-byte limit ({size} bytes)"
        )


def file_name(generation: Generation, image: GeneratedImage) -> str:
    """A name that says what the image is and is the same whenever the request is the same:
    `<prompt-slug>_<width>x<height>_s<steps>_seed<seed>_<index>.<ext>`."""
    request = generation.request
    slug = re.sub(r"[^a-z0-9]+", "-", str(request.get("prompt", "")).lower()).strip("-")
    if len(slug) > 40:  # cut at a word boundary, not inside a word
        slug = slug[:41].rsplit("-", 1)[0] if "-" in slug[:41] else slug[:40]
    slug = slug or "image"
    size = f"{request.get('width')}x{request.get('height')}"
    return (
        f"{slug}_{size}_s{request.get('steps')}_seed{generation.seed}_{image.index}"
        f"{EXTENSIONS[image.type]}"
    )


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once, at import, while nothing else runs: os.umask can only be read by setting it.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def staged_file(directory: Path) -> Iterator[IO[bytes]]:
    """A hidden temporary file in `directory`, removed unless it was published."""
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed and removed below
        dir=directory, prefix=".novita-", suffix=".part", delete=False
    )
    # mkstemp makes files private (0600); a saved image gets the mode any new file would.
    os.chmod(handle.name, _FILE_MODE)
    try:
        yield handle
    finally:
        handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)


def publish(handle: IO[bytes], target: Path) -> Path:
    """Give the finished temporary file its final name without ever replacing a different file.

    Saving the same image twice returns the existing path; a different image under the same
    name gets `-2`, `-3`, ... appended.
    """
    handle.flush()
    os.fsync(handle.fileno())
    candidate, number = target, 1
    while True:
        try:
            os.link(handle.name, candidate)  # atomic, and fails rather than overwrite
        except FileExistsError:
            if filecmp.cmp(handle.name, candidate, shallow=False):
                return candidate
            number += 1
            candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
            continue
        _sync_directory(candidate.parent)
        return candidate


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one."""
    with staged_file(path.parent) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
        os.replace(handle.name, path)


def write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    write_bytes_atomically(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def sidecar(generation: Generation, image: GeneratedImage) -> dict[str, Any]:
    """What it takes to reproduce an image: the exact request, seed, task and cost."""
    return {
        "task_id": generation.task_id,
        "index": image.index,
        "type": image.type,
        "seed": generation.seed,
        "cost_usd": str(generation.cost),
        "request": generation.request,
    }


def _sync_directory(directory: Path) -> None:
    # Make the new name durable too; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
