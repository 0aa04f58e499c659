"""Receiving image bytes safely: type, size and completeness checked as they stream, files
published atomically and never over a different image."""

from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import re
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from novita_flux._constants import LOGGER_NAME, MAX_REDIRECTS
from novita_flux._errors import ImageDownloadError, ImageExpiredError
from novita_flux._faultpoints import reach
from novita_flux._imagebytes import HEAD_BYTES, TAIL_BYTES, incomplete, sniff
from novita_flux._models import GeneratedImage, Generation

logger = logging.getLogger(LOGGER_NAME)

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
_ERROR_BYTES = 4096  # of a storage host's error answer, kept for the message
# What S3 and R2 say, with a 403, for a pre-signed link past its expiry.
_EXPIRED = re.compile(rb"Request has expired|<Code>(ExpiredToken|ExpiredRequest)</Code>", re.I)


def next_hop(
    url: httpx.URL, status: int, headers: Mapping[str, str], followed: int
) -> str | httpx.URL | None:
    """Where an image link's answer redirects to, when it is a redirect to follow (a 3xx with a
    Location, as httpx counts them, fewer than MAX_REDIRECTS hops in); None when it is not.

    Redirects are followed by hand rather than by httpx, whose redirects re-add the client's
    cookies: every hop gets the same bare request. A Location that is no URL is returned as
    text, for the image request to refuse with the rest."""
    location = headers.get("Location")
    if not (httpx.codes.is_redirect(status) and location and followed < MAX_REDIRECTS):
        return None
    try:
        return url.join(location)
    except (httpx.InvalidURL, ValueError):
        return location


def check_not_expired(image: GeneratedImage) -> None:
    if image.expires_at is not None and image.expired:  # the first test only narrows the type
        raise ImageExpiredError(
            f"image {image.index} expired at {image.expires_at.isoformat()} "
            f"(its link was valid for {image.ttl} s); generate it again"
        )


def storage_error(image: GeneratedImage, status: int, head: bytes) -> ImageDownloadError:
    """The error for a storage host's refusal; an expired pre-signed link says so in its body."""
    text = head[:200].decode(errors="replace")
    if status in (400, 403) and _EXPIRED.search(head):
        return ImageExpiredError(
            f"image {image.index}: the storage host says its link has expired ({status}: "
            f"{text}); generate it again"
        )
    return ImageDownloadError(f"the storage host answered {status} for image {image.index}: {text}")


class ImageReceiver:
    """Feeds streamed chunks to a binary sink, refusing a body that is not a whole image.

    The type is read from the bytes, whatever the Content-Type said (storage hosts often say
    application/octet-stream). A PNG, JPEG or WebP other than the one promised is kept, under
    its real type, with a warning: it was paid for. A body that ends before its image does (a
    connection closed early, with no Content-Length to tell) raises httpx.RemoteProtocolError,
    the same error httpx gives for a body shorter than its Content-Length, so it is retried.
    """

    def __init__(self, image: GeneratedImage, sink: IO[bytes], max_bytes: int) -> None:
        self.image = image
        self.sink = sink
        self.max_bytes = max_bytes
        self.size = 0
        self.found: str | None = None  # the type the bytes announce
        self.error_head = b""  # the start of an error answer's body
        self._head = b""
        self._tail = b""

    def expect_length(self, header: str | None) -> None:
        if header is not None and header.isdigit() and int(header) > self.max_bytes:
            raise self._too_large(int(header))

    def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise self._too_large(self.size)
        if len(self._head) < HEAD_BYTES:
            self._head += chunk[: HEAD_BYTES - len(self._head)]
            if self.found is None and len(self._head) >= 12:
                self._check_type()
        self._tail = (self._tail + chunk)[-TAIL_BYTES:]
        reach("write.image")
        self.sink.write(chunk)

    def keep_error(self, chunk: bytes) -> None:
        if len(self.error_head) < _ERROR_BYTES:
            self.error_head += chunk[: _ERROR_BYTES - len(self.error_head)]

    def finish(self) -> str:
        """The image's type, once the whole body has arrived and proved to be a whole image."""
        if self.found is None:
            self._check_type()
        assert self.found is not None
        problem = incomplete(self.found, self._head, self._tail, self.size)
        if problem is not None:
            raise httpx.RemoteProtocolError(
                f"image {self.image.index} ended after {self.size} bytes, before the image did: "
                f"{problem}"
            )
        return self.found

    def _check_type(self) -> None:
        found = sniff(self._head)
        if found is None:
            raise ImageDownloadError(
                f"image {self.image.index} should be a {self.image.type.upper()} image but the "
                f"storage host sent something else (first bytes {self._head[:8]!r})"
            )
        if found != self.image.type:
            logger.warning(
                "image %d was promised as %s but is a %s image; kept as what it is",
                self.image.index,
                self.image.type.upper(),
                found.upper(),
            )
        self.found = found

    def _too_large(self, size: int) -> ImageDownloadError:
        return ImageDownloadError(
            f"image {self.image.index} is over the {self.max_bytes}-byte limit ({size} bytes)"
        )


def file_name(generation: Generation, image: GeneratedImage, image_type: str | None = None) -> str:
    """A name that says what the image is and is the same whenever the request is the same:
    `<prompt-slug>_<width>x<height>_s<steps>_seed<seed>_<index>.<ext>`; the extension is that
    of `image_type` (what the bytes turned out to be) when given."""
    request = generation.request
    slug = prompt_slug(str(request.get("prompt", "")))
    size = f"{request.get('width')}x{request.get('height')}"
    return (
        f"{slug}_{size}_s{request.get('steps')}_seed{generation.seed}_{image.index}"
        f"{EXTENSIONS[image_type or image.type]}"
    )


def whole_on_disk(path: Path) -> bool:
    """Whether the file is there and is a whole image, judged from its first and last bytes
    (two small reads, whatever its size)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(size - TAIL_BYTES, 0))
            tail = handle.read(TAIL_BYTES)
    except OSError:
        return False
    kind = sniff(head)
    return kind is not None and incomplete(kind, head, tail, size) is None


def image_index(file_name: str) -> int | None:
    """The image index in a saved file's name (`..._<index>.png`, `..._<index>-2.png`)."""
    stem = file_name.rsplit(".", 1)[0].rsplit("_", 1)[-1].split("-", 1)[0]
    return int(stem) if stem.isascii() and stem.isdigit() else None  # not "²": int() refuses it


def prompt_slug(prompt: str, limit: int = 40) -> str:
    """The prompt as a file name's first part: letters, digits and marks of any script kept
    (NFKC-normalised, lowercased), every run of anything else one `-`, at most `limit`
    characters cut at a word boundary. It holds no separator, dot or underscore, so it can
    never leave its directory or be mistaken for the name's other fields."""
    text = unicodedata.normalize("NFKC", prompt).lower()
    kept = "".join(char if unicodedata.category(char)[0] in "LNM" else "-" for char in text)
    slug = re.sub(r"-+", "-", kept).strip("-")
    while slug and unicodedata.category(slug[0])[0] == "M":  # a mark cannot start a name
        slug = slug[1:]
    if len(slug) > limit:  # cut at a word boundary, not inside a word
        head = slug[: limit + 1]
        slug = head.rsplit("-", 1)[0] if "-" in head else slug[:limit]
    return slug.strip("-") or "image"


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


def write_atomically(
    path: Path, chunks: Iterable[bytes], *, ready: Callable[[], object] | None = None
) -> None:
    """Replace `path` with the chunks' bytes in one step: readers see the old file or the new
    one, and the new one is on disk before it takes the name (so that a crash never leaves an
    empty file under it). `ready` is called between the two: the caller's fault point (a
    literal `reach`, so that tests/faults can find it). The directory is synced after the
    rename, so that the new name survives a power loss as the contents do."""
    with staged_file(path.parent) as handle:
        for chunk in chunks:
            reach("write.file")
            handle.write(chunk)
        handle.flush()
        os.fsync(handle.fileno())
        if ready is not None:
            ready()
        os.replace(handle.name, path)
    _sync_directory(path.parent)


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one."""
    write_atomically(path, [data])


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
