"""`novita-flux generate`'s calls in flight, on disk: a call stopped after its request may have
left (the process killed, the machine down) is still known to the next `generate` into the same
directory, as a batch's requests are known to its ledger.

Before the request is sent, `OUT/.novita-flux-call-<id>.json` says what is being sent; once the
API answers, it holds the task id and the image links too; once every image and sidecar is
saved, it is removed. The next run into OUT reads what is left: the images of an answered call
are saved (a download costs nothing), and a call with no answer is reported as possibly billed
on every run until its record is deleted; the same request is not sent again without
`--resend-unknown`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import attrs

from novita_flux._identity import canonical
from novita_flux._images import write_json_atomically
from novita_flux._models import Generation, entry_of, image_of

CALL_PREFIX: Final = ".novita-flux-call-"


@attrs.frozen
class Call:
    """One recorded call: its request, and the API's answer once there was one."""

    path: Path
    body: dict[str, Any]
    task_id: str | None = None
    images: list[dict[str, Any]] = attrs.field(factory=list)
    cost: str = "0"

    @property
    def answered(self) -> bool:
        return self.task_id is not None

    def generation(self) -> Generation:
        from decimal import Decimal

        return Generation(
            self.task_id or "",
            [image_of(entry) for entry in self.images],
            int(self.body["seed"]),
            self.body,
            Decimal(self.cost),
        )

    def said(self) -> str:
        body = self.body
        return (
            f"seed {body.get('seed')}, {body.get('width')}x{body.get('height')}, "
            f"{body.get('steps')} steps, {body.get('image_num')} image(s)"
        )


def path_for(out: Path, body: dict[str, Any]) -> Path:
    digest = hashlib.sha256(canonical(body).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return out / f"{CALL_PREFIX}{digest}.json"


def begin(out: Path, body: dict[str, Any], cost: object) -> Path:
    """Record the call before its request may leave; where the record is."""
    path = path_for(out, body)
    write_json_atomically(
        path, {"body": body, "cost": str(cost), "sent": datetime.now(UTC).isoformat()}
    )
    return path


def answered(path: Path, generation: Generation) -> None:
    """Add the answer to the record: from now on, its images can always be fetched again."""
    write_json_atomically(
        path,
        {
            "body": generation.request,
            "cost": str(generation.cost),
            "task_id": generation.task_id,
            "images": [entry_of(image) for image in generation.images],
        },
    )


def done(path: Path) -> None:
    """Everything the call paid for is saved: its record goes."""
    path.unlink(missing_ok=True)


def left_behind(out: Path) -> Iterator[Call | str]:
    """The records earlier runs left in OUT, oldest first; a record that does not read is given
    as the line that says so (it is kept, never deleted)."""
    if not out.is_dir():
        return
    found = sorted(out.glob(f"{CALL_PREFIX}*.json"), key=lambda path: path.stat().st_mtime)
    for path in found:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            body = data["body"]
            if not isinstance(body, dict) or "seed" not in body:
                raise ValueError("no request in it")
            task_id = data.get("task_id")
            yield Call(
                path,
                body,
                task_id if isinstance(task_id, str) else None,
                [entry for entry in data.get("images") or [] if isinstance(entry, dict)],
                str(data.get("cost") or "0"),
            )
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
            yield (
                f"{path.name}: the record of an earlier call cannot be read ({error}); it may "
                "have been billed; kept as it is"
            )
