"""Requests checked against the spec before anything is sent, and what they cost."""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation, localcontext
from functools import cache, lru_cache
from typing import Any

from novita_flux._constants import DEFAULT_HEIGHT, DEFAULT_IMAGE_NUM, DEFAULT_STEPS, DEFAULT_WIDTH
from novita_flux._errors import BudgetExceededError, ValidationError
from novita_flux._schema import SchemaViolation, compile_schema, conform, show
from novita_flux._spec import GENERATE, Schema, pricing, request_schema


@cache
def compiled_request_schema() -> Schema:
    return compile_schema(request_schema(GENERATE))


def field_schema(name: str) -> Schema:
    properties: dict[str, Schema] = compiled_request_schema()["properties"]
    return properties[name]


# The fields whose None asks for a default rather than being a mistake.
NONE_MEANS_DEFAULT = frozenset({"seed", "response_image_type"})


def prepare_request(
    fields: Mapping[str, Any], max_cost: Decimal | float | int | str | None = None
) -> tuple[dict[str, Any], Decimal]:
    """The exact JSON body to send for these fields, and its cost.

    Fields use the API's names; absent ones take the client's defaults, and so do `seed` and
    `response_image_type` when None (a random seed; the spec's default type). None for any
    other field is refused like any other wrong type. Raises ValidationError or
    BudgetExceededError, so nothing that would be refused or is over budget is ever sent.
    """
    merged = {
        "width": DEFAULT_WIDTH,
        "height": DEFAULT_HEIGHT,
        "steps": DEFAULT_STEPS,
        "image_num": DEFAULT_IMAGE_NUM,
        **{
            name: value
            for name, value in fields.items()
            if value is not None or name not in NONE_MEANS_DEFAULT
        },
    }
    if "seed" not in merged:
        merged["seed"] = random_seed()
    # Sent explicitly (from the spec's default), so the body says which type was asked for.
    merged.setdefault("response_image_type", _default_image_type())
    body = validate_request(merged)
    cost = request_cost(body)
    check_budget(cost, None if max_cost is None else as_budget(max_cost))
    return in_field_order(body), cost


@cache
def field_order() -> tuple[str, ...]:
    """The body's fields in the order the generated request model writes them (the spec's
    required fields, then the rest as the spec lists them), so the bytes sent, the dry run and
    the records read the same as before the overlay built its bodies itself."""
    schema = compiled_request_schema()
    required = tuple(schema.get("required", ()))
    return required + tuple(name for name in schema["properties"] if name not in required)


def in_field_order(body: dict[str, Any]) -> dict[str, Any]:
    order = field_order()
    ordered = {name: body[name] for name in order if name in body}
    if len(ordered) != len(body):  # a field the spec does not name: kept, last
        ordered.update(body)
    return ordered


def validate_request(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body for these fields, or ValidationError naming the first field that is off."""
    try:
        body: dict[str, Any] = conform(compiled_request_schema(), dict(fields))
    except SchemaViolation as violation:
        raise as_validation_error(violation) from None
    return body


def validate_field(name: str, value: Any) -> Any:
    try:
        return conform(field_schema(name), value, (name,))
    except SchemaViolation as violation:
        raise as_validation_error(violation) from None


def as_validation_error(violation: SchemaViolation) -> ValidationError:
    return ValidationError(violation.field, violation.value, violation.expected, str(violation))


def random_seed() -> int:
    return random.randint(*_seed_range())


# Read once from the spec: every call without a seed or a type needs them.
@cache
def _seed_range() -> tuple[int, int]:
    seed = field_schema("seed")
    return seed["minimum"], seed["maximum"]


@cache
def _default_image_type() -> str:
    default: str = field_schema("response_image_type")["default"]
    return default


def estimate_cost(width: int, height: int, steps: int, image_num: int = 1) -> Decimal:
    """Exact price in USD of one call: the spec's per-image price times image_num.

    >>> estimate_cost(512, 512, 4)
    Decimal('0.00075')
    """
    return _price(
        validate_field("width", width) * validate_field("height", height),
        validate_field("steps", steps),
        validate_field("image_num", image_num),
    )


def request_cost(body: Mapping[str, Any]) -> Decimal:
    """The price of a body that validate_request has already accepted."""
    return _price(body["width"] * body["height"], body["steps"], body["image_num"])


def _exact_price(pixels: int, steps: int, images: int) -> Decimal:
    price = pricing()
    with localcontext() as context:
        context.prec = 80  # far more digits than any exact result here needs: no rounding
        cost = price.coefficient * (pixels * steps * images) / price.pixel_steps_unit
    return _plain(cost)


# A batch asks the same few sizes again and again. The arithmetic stays a plain function beside
# the cached one so that it can be read, tested and mutated on its own.
_price = lru_cache(maxsize=4096)(_exact_price)


def as_budget(value: Decimal | float | int | str, field: str = "max_cost") -> Decimal:
    """A budget in USD as a Decimal; floats are read by their shortest repr (0.1 is 0.1)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int | str):
        raise ValidationError(
            field, value, "a non-negative amount", f"{field}: {show(value)} is not an amount"
        )
    try:
        amount = Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0:
        raise ValidationError(
            field,
            value,
            "a non-negative amount in USD",
            f"{field}: {show(value)} is not a non-negative amount in USD",
        )
    return amount


def check_budget(cost: Decimal, budget: Decimal | None, what: str = "request") -> None:
    if budget is not None and cost > budget:
        raise BudgetExceededError(cost, budget, what)


def _plain(amount: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (0.000750 -> 0.00075)."""
    normal = amount.normalize()
    exponent = normal.as_tuple().exponent
    return normal.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normal
