"""What a verification sends and why: Send (one request), Probe (one thing to find out, its
requests and how to judge their answers) and Plan (every probe, and what they cost)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final, Literal

import attrs

from novita_flux._spec import GENERATE

# USD a verification may cost unless told otherwise: the whole default plan is far below it.
DEFAULT_MAX_COST: Final = Decimal("0.01")
GROUPS: Final = (
    "reads",
    "bounds",
    "types",
    "questions",
    "invalid",
    "auth",
    "balance",
    "rate-limit",
)
# Not a key anyone was given: what a wrong key gets. HTTP/1.1 cannot send a header value that
# ends in a space, so the empty bearer is the scheme with nothing after it.
WRONG_KEY: Final = "novita-flux-verify-not-a-key"

Auth = Literal["key", "none", "empty", "wrong"]
Check = Literal[
    "generates",
    "refused",
    "authentication",
    "format_field",
    "seed_omitted",
    "same_bytes",
    "rate_limit",
    "reads",
    "top_up",
    "price",
]


def total(amounts: Iterable[Decimal]) -> Decimal:
    """A sum of exact prices, without trailing zeros."""
    return sum(amounts, Decimal(0)).normalize()


@attrs.frozen
class Send:
    """One request of a probe: the operation it calls (by operationId), the exact JSON body (None
    for an operation that takes none), which Authorization it carries, what the spec says it
    costs, and what it would cost should the server bill it whatever the spec says."""

    body: Any
    auth: Auth = "key"
    cost: Decimal = Decimal(0)
    worst_cost: Decimal = Decimal(0)
    operation: str = GENERATE

    @property
    def images(self) -> int:
        """Images the request asks for (0 when it cannot ask for any)."""
        count = self.body.get("image_num") if isinstance(self.body, dict) else None
        return count if type(count) is int and count > 0 else 0


@attrs.frozen
class Probe:
    """One thing to find out: its requests and how their answers are to be judged."""

    id: str
    group: str
    title: str
    check: Check
    sends: tuple[Send, ...]
    # The reasons a refusal is expected to carry (refused, authentication).
    reasons: frozenset[str] = frozenset()
    # What else the same request checks (bounds at their minimum are the cheapest request).
    covers: tuple[str, ...] = ()
    # A top-up's aim: what the run is to have spent, in USD, once it is answered (its request
    # is sized when it is reached, from what the run has spent by then).
    target: Decimal | None = None

    @property
    def cost(self) -> Decimal:
        return total(send.cost for send in self.sends)

    @property
    def worst_cost(self) -> Decimal:
        return total(send.worst_cost for send in self.sends)

    @property
    def images(self) -> int:
        """Images the probe generates if the server answers as the spec says."""
        return sum(send.images for send in self.sends if send.cost)


@attrs.frozen
class Plan:
    """Every probe of a run, in the order they are sent, and what they cost."""

    probes: tuple[Probe, ...]

    @property
    def price(self) -> Decimal:
        """USD, exact: the sum of estimate_cost over every request the spec says is billed."""
        return total(probe.cost for probe in self.probes)

    @property
    def worst_case(self) -> Decimal:
        """USD should the server also bill every request the spec says it refuses unbilled."""
        return total(probe.worst_cost for probe in self.probes)

    @property
    def requests(self) -> int:
        return sum(len(probe.sends) for probe in self.probes)

    @property
    def images(self) -> int:
        return sum(probe.images for probe in self.probes)

    def as_dict(self) -> dict[str, Any]:
        """The plan for a machine (`verify --dry-run --json`): amounts as decimal strings."""
        return {
            "probes": [
                {
                    "id": probe.id,
                    "group": probe.group,
                    "title": probe.title,
                    "requests": len(probe.sends),
                    "images": probe.images,
                    "cost": str(probe.cost),
                }
                for probe in self.probes
            ],
            "requests": self.requests,
            "images": self.images,
            "price": str(self.price),
            "worst_case": str(self.worst_case),
        }
