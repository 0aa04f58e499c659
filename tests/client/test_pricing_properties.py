"""What a request costs: the spec's formula exactly, and max_cost as a hard line."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import respx
from hypothesis import given
from hypothesis import strategies as st

from novita_flux import BudgetExceededError, FluxSchnell, _spec, estimate_cost
from tests.strategies import (
    FIELDS,
    PRICED,
    bounds,
    budgets_around,
    in_range,
    priced_arguments,
    valid_requests,
)
from tests.support import API_URL, KEY, success_body

# Read straight from the document, not through novita_flux._spec.pricing().
_PRICING = _spec.document()["info"]["x-pricing"]
COEFFICIENT = Fraction(_PRICING["coefficient"])
PIXEL_STEPS_UNIT = Fraction(_PRICING["pixel_steps_unit"])


@pytest.fixture(scope="module")
def flux() -> Iterator[FluxSchnell]:
    with FluxSchnell(api_key=KEY, max_retries=0) as client:
        yield client


@given(arguments=priced_arguments())
def test_estimate_cost_is_the_spec_formula_exactly(arguments: dict[str, int]) -> None:
    width, height, steps, image_num = (arguments[name] for name in PRICED)
    cost = estimate_cost(**arguments)
    assert isinstance(cost, Decimal)
    assert Fraction(cost) == COEFFICIENT * width * height * steps / PIXEL_STEPS_UNIT * image_num


@given(arguments=priced_arguments(), name=st.sampled_from(PRICED))
def test_cost_never_falls_as_one_argument_grows_across_its_whole_range(
    arguments: dict[str, int], name: str
) -> None:
    low, high = bounds(name)
    costs = [estimate_cost(**arguments | {name: value}) for value in range(low, high + 1)]
    assert costs == sorted(costs)


@given(arguments=priced_arguments(), other_count=in_range(FIELDS["image_num"]))
def test_cost_is_proportional_to_image_num(arguments: dict[str, int], other_count: int) -> None:
    cost = Fraction(estimate_cost(**arguments))
    other_cost = Fraction(estimate_cost(**arguments | {"image_num": other_count}))
    assert cost * other_count == other_cost * arguments["image_num"]


def outcome(flux: FluxSchnell, request: dict[str, Any], max_cost: Decimal | float) -> str:
    """'sent' (one request went out) or 'refused' (BudgetExceededError, nothing went out)."""
    with respx.mock(assert_all_called=False) as router:
        route = router.post(API_URL).respond(200, json=success_body(request["image_num"]))
        try:
            flux.generate(**request, max_cost=max_cost)
        except BudgetExceededError:
            return "refused" if route.call_count == 0 else "refused after sending"
    return "sent" if route.call_count == 1 else f"sent {route.call_count} requests"


@given(request=valid_requests(), data=st.data())
def test_max_cost_blocks_exactly_the_requests_estimated_above_it(
    flux: FluxSchnell, request: dict[str, Any], data: st.DataObject
) -> None:
    cost = estimate_cost(**{name: request[name] for name in PRICED})
    for max_cost in data.draw(budgets_around(cost), label="max_costs"):
        over = Fraction(cost) > Fraction(str(max_cost))  # a float budget reads as its repr
        assert outcome(flux, request, max_cost) == ("refused" if over else "sent"), max_cost
