"""The hypothesis check: a value one contract accepts and the other refuses proves a break.

Requests are drawn from the released contract and put to the working one's validator; response
bodies are drawn from the working contract and put to the released one's. Both validators are
the overlay's own (`novita_flux._schema.conform`), so a proof is exactly what the two clients
would do. hypothesis shrinks what it finds to a small value, and runs derandomized: the same pair
of contracts gives the same report, in CI and in the README.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.errors import NoSuchExample

from novita_flux._schema import SchemaViolation, conform
from novita_flux._spec import Schema
from scripts.spec_diff.schemas import ITEM, OTHER, Where
from scripts.spec_diff.values import QUICK, from_compiled

EXAMPLES: Final = 200  # values drawn per search; a break that is there is found in a few


def refusal(schema: Schema, value: Any) -> SchemaViolation | None:
    try:
        conform(schema, value)
    except SchemaViolation as violation:
        return violation
    return None


def located(violation: SchemaViolation, where: Where) -> bool:
    """Whether the violation is at `where` or inside it (array items and unnamed fields match
    any index and any name)."""
    location = tuple(ITEM if isinstance(part, int) else part for part in violation.location)
    return len(location) >= len(where) and all(
        wanted in (OTHER, found) for wanted, found in zip(where, location, strict=False)
    )


def search(
    accepting: Schema,
    refusing: Schema,
    wanted: Callable[[SchemaViolation], bool] = lambda violation: True,
    examples: int = EXAMPLES,
) -> tuple[Any, SchemaViolation] | None:
    """The smallest value found that `accepting` accepts and `refusing` refuses for a wanted
    reason, or None when none turns up in `examples` draws."""

    def breaks(value: Any) -> bool:
        if refusal(accepting, value) is not None:
            return False  # drawn to conform; one that does not proves nothing
        violation = refusal(refusing, value)
        return violation is not None and wanted(violation)

    quiet = settings(
        max_examples=examples,
        database=None,
        derandomize=True,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        value = find(from_compiled(accepting, QUICK), breaks, settings=quiet)
    except NoSuchExample:
        return None
    violation = refusal(refusing, value)
    assert violation is not None  # `find` returns only a value for which `breaks` held
    return value, violation
