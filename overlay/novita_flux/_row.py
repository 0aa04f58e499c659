"""A request as the batch ledger holds it, and the ledger's column lists, derived from it.

The `requests` table's columns that the batch reads are the fields of `Row` (`line` is the
`lines` table's): every SELECT, the journal's snapshot and recovery's read of a damaged ledger
take their column lists from here, so that a column added to the row is added everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from novita_flux._images import image_index
from novita_flux._models import GeneratedImage, Generation, image_of
from novita_flux._states import State


@attrs.frozen
class Row:
    """A request of the current run, as the ledger holds it (`line` None: a request paid for
    by an earlier run whose line is no longer in the input)."""

    line: int | None
    key: str
    request: Any
    body: dict[str, Any]
    seed: int
    cost: Decimal
    state: State
    task_id: str | None
    images: list[dict[str, Any]]
    files: list[str]
    error: dict[str, Any] | None

    @classmethod
    def read(cls, record: Sequence[Any]) -> Row:
        """The row from `line` and the `COLUMNS` as SQLite gives them (JSON as text)."""
        line, *values = record
        raw = dict(zip(COLUMNS, values, strict=True))
        return cls(
            line=line,
            key=raw["key"],
            request=json.loads(raw["request"]),
            body=json.loads(raw["body"]),
            seed=int(raw["seed"]),
            cost=Decimal(raw["cost"]),
            state=State(raw["state"]),
            task_id=raw["task_id"],
            images=json.loads(raw["images"]),
            files=json.loads(raw["files"]),
            error=json.loads(raw["error"]) if raw["error"] else None,
        )

    def generation(self) -> Generation:
        """The paid-for generation recorded here, to finish saving its images."""
        return Generation(
            self.task_id or "", [image_of(entry) for entry in self.images], self.seed, self.body,
            self.cost,
        )  # fmt: skip

    def missing_images(self) -> list[GeneratedImage]:
        saved = {image_index(name) for name in self.files}
        return [image for image in self.generation().images if image.index not in saved]

    def unsaved(self) -> Generation:
        """The generation, with only the images not saved yet."""
        return attrs.evolve(self.generation(), images=self.missing_images())

    @property
    def where(self) -> str:
        """How messages name it: its line, or its key when it left the input."""
        return (
            f"line {self.line}"
            if self.line is not None
            else f"request {self.key} (not in the input)"
        )

    @property
    def expired(self) -> bool:
        """Whether every image still to save has a link past its expiry."""
        missing = self.missing_images()
        return bool(missing) and all(image.expired for image in missing)


# The `requests` columns a Row holds, in its order.
COLUMNS: Final = tuple(field.name for field in attrs.fields(Row) if field.name != "line")
# A request's whole record, as the journal keeps it and recovery reads it back: the seed is in
# the body; `sends` counts the times it may have been billed.
RECORD_COLUMNS: Final = (*(name for name in COLUMNS if name != "seed"), "sends")
# The columns that hold JSON text (`error` may also be NULL).
JSON_COLUMNS: Final = ("request", "body", "images", "files", "error")


def qualified(columns: Sequence[str], table: str = "requests") -> str:
    """`requests.key, requests.request, ...`: a column list for a query that joins `lines`,
    whose `key`, `request` and `error` would otherwise be ambiguous."""
    return ", ".join(f"{table}.{name}" for name in columns)
