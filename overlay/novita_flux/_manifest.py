"""The batch manifest: one JSON line per input line, rewritten atomically after every change,
so an interrupted batch leaves a consistent record and the next run resumes from it."""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from novita_flux._errors import APIStatusError
from novita_flux._images import write_bytes_atomically
from novita_flux._models import GeneratedImage, Generation

DONE = "done"  # generated and saved: never sent again
GENERATED = "generated"  # paid for, images not all saved yet: resume downloads, not generation
FAILED = "failed"
INVALID = "invalid"


def request_key(request: Any) -> str:
    """Identifies a request across runs: an edited line is a new request."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@attrs.define
class Entry:
    line: int
    key: str
    status: str
    request: Any = None  # the input line's object, as read
    body: dict[str, Any] | None = None  # the exact body sent
    seed: int | None = None
    task_id: str | None = None
    cost: str | None = None
    files: list[str] = attrs.Factory(list)
    images: list[dict[str, Any]] = attrs.Factory(list)
    error: dict[str, Any] | None = None

    def generation(self) -> Generation:
        """The paid-for generation recorded here, to finish saving its images."""
        if self.body is None or self.task_id is None or self.seed is None:
            raise ValueError(f"manifest line {self.line} records no generation")
        images = [
            GeneratedImage(
                url=image["url"],
                ttl=image["ttl"],
                type=image["type"],
                expires_at=(
                    datetime.fromisoformat(image["expires_at"]) if image["expires_at"] else None
                ),
                index=image["index"],
            )
            for image in self.images
        ]
        return Generation(self.task_id, images, self.seed, self.body, Decimal(self.cost or 0))


def generated_entry(line: int, key: str, request: Any, generation: Generation) -> Entry:
    return Entry(
        line,
        key,
        GENERATED,
        request,
        body=generation.request,
        seed=generation.seed,
        task_id=generation.task_id,
        cost=str(generation.cost),
        images=[
            {
                "url": image.url,
                "ttl": image.ttl,
                "type": image.type,
                "expires_at": image.expires_at.isoformat() if image.expires_at else None,
                "index": image.index,
            }
            for image in generation.images
        ],
    )


def describe_error(error: BaseException) -> dict[str, Any]:
    described: dict[str, Any] = {"type": type(error).__name__, "message": str(error)}
    if isinstance(error, APIStatusError):
        described |= {
            "status_code": error.status_code,
            "reason": error.reason,
            "task_id": error.task_id,
        }
    field = getattr(error, "field", None)
    if field is not None:
        described["field"] = field
    return described


class Manifest:
    """DIR/manifest.jsonl, kept in input order; safe to update from several threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[int, Entry] = {}
        self._lock = threading.Lock()
        if path.exists():
            for text in path.read_text(encoding="utf-8").splitlines():
                if text.strip():
                    data = json.loads(text)
                    self._entries[data["line"]] = Entry(**data)

    def get(self, line: int, key: str) -> Entry | None:
        entry = self._entries.get(line)
        return entry if entry is not None and entry.key == key else None

    def put(self, entry: Entry) -> None:
        with self._lock:
            self._entries[entry.line] = entry
            self._write()

    def entries(self) -> list[Entry]:
        return [self._entries[line] for line in sorted(self._entries)]

    def _write(self) -> None:
        text = "".join(
            json.dumps(attrs.asdict(self._entries[line]), ensure_ascii=False) + "\n"
            for line in sorted(self._entries)
        )
        write_bytes_atomically(self.path, text.encode("utf-8"))
