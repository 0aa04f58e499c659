"""Fixed examples that pin, to the character, what the core of a request does: which values are
accepted and what they become, the exact ValidationError (field, value, expected, message) for
each refusal, the exact price, the validator's every keyword and location, and the identity of a
request (its canonical JSON and key).

The property tests beside this file show the rules hold in general; these pin the exact words,
bounds and numbers, so that a flipped comparison, a dropped argument or an edited message in
_request.py, _schema.py or _identity.py fails a test here (each test was seen failing against
such mutants, see `make mutation`)."""

from __future__ import annotations

import copy
import math
import pickle
import random
from decimal import Decimal
from typing import Any

import pytest

from novita_flux import BudgetExceededError, ValidationError
from novita_flux import _schema as schema_module
from novita_flux._identity import canonical, normalised, request_key, without_drawn_seed
from novita_flux._request import (
    _exact_price,
    _plain,
    as_budget,
    check_budget,
    compiled_request_schema,
    estimate_cost,
    field_schema,
    in_field_order,
    prepare_request,
    random_seed,
    request_cost,
    validate_field,
    validate_request,
)
from novita_flux._schema import (
    SchemaViolation,
    compile_schema,
    conform,
    describe,
    show,
)
from novita_flux._spec import GENERATE, response_schema

WIDTH = "an integer in [64, 2048]"
STEPS = "an integer in [1, 100]"
IMAGE_NUM = "an integer in [1, 8]"
SEED = "an integer in [0, 4294967295]"
PROMPT = "a string of 1 to 1024 characters"
IMAGE_TYPE = "one of 'png', 'webp', 'jpeg'"
KNOWN = "height, image_num, prompt, response_image_type, seed, steps, width"
TTL = "an integer >= 0 or a string matching '^[0-9]+$'"
IMAGE_TYPE_PATTERN = "a string matching '^([Pp][Nn][Gg]|[Ww][Ee][Bb][Pp]|[Jj][Pp][Ee]?[Gg])$'"


def refusal(error: ValidationError | SchemaViolation) -> tuple[Any, ...]:
    """Everything a refusal says, for one equality assertion."""
    return (error.field, error.value, error.expected, str(error))


# --- as_budget ---------------------------------------------------------------------------------

NOT_AN_AMOUNT = "a non-negative amount"
NOT_USD = "a non-negative amount in USD"


@pytest.mark.parametrize(
    ("value", "expected", "message"),
    [
        (-1, NOT_USD, "max_cost: -1 is not a non-negative amount in USD"),
        (-0.5, NOT_USD, "max_cost: -0.5 is not a non-negative amount in USD"),
        (
            Decimal("-0.01"),
            NOT_USD,
            "max_cost: Decimal('-0.01') is not a non-negative amount in USD",
        ),
        ("-0.01", NOT_USD, "max_cost: '-0.01' is not a non-negative amount in USD"),
        ("NaN", NOT_USD, "max_cost: 'NaN' is not a non-negative amount in USD"),
        ("inf", NOT_USD, "max_cost: 'inf' is not a non-negative amount in USD"),
        (float("inf"), NOT_USD, "max_cost: inf is not a non-negative amount in USD"),
        (float("-inf"), NOT_USD, "max_cost: -inf is not a non-negative amount in USD"),
        (
            Decimal("Infinity"),
            NOT_USD,
            "max_cost: Decimal('Infinity') is not a non-negative amount in USD",
        ),
        (Decimal("NaN"), NOT_USD, "max_cost: Decimal('NaN') is not a non-negative amount in USD"),
        ("abc", NOT_USD, "max_cost: 'abc' is not a non-negative amount in USD"),
        ("", NOT_USD, "max_cost: '' is not a non-negative amount in USD"),
        (True, NOT_AN_AMOUNT, "max_cost: True is not an amount"),
        (False, NOT_AN_AMOUNT, "max_cost: False is not an amount"),
        ([1], NOT_AN_AMOUNT, "max_cost: [1] is not an amount"),
        (None, NOT_AN_AMOUNT, "max_cost: None is not an amount"),
        (b"1", NOT_AN_AMOUNT, "max_cost: b'1' is not an amount"),
    ],
)
def test_as_budget_refuses_each_non_amount_with_exact_field_value_expected_and_message(
    value: object, expected: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        as_budget(value)  # type: ignore[arg-type]
    assert refusal(raised.value) == ("max_cost", value, expected, message)


def test_as_budget_refuses_nan_float_keeping_the_very_value() -> None:
    nan = float("nan")
    with pytest.raises(ValidationError) as raised:
        as_budget(nan)
    assert raised.value.value is nan
    assert (raised.value.field, raised.value.expected, str(raised.value)) == (
        "max_cost",
        NOT_USD,
        "max_cost: nan is not a non-negative amount in USD",
    )


def test_as_budget_refuses_an_arbitrary_object_naming_its_repr() -> None:
    thing = object()
    with pytest.raises(ValidationError) as raised:
        as_budget(thing)  # type: ignore[arg-type]
    assert refusal(raised.value) == (
        "max_cost",
        thing,
        NOT_AN_AMOUNT,
        f"max_cost: {thing!r} is not an amount",
    )


@pytest.mark.parametrize(
    ("value", "expected", "message"),
    [
        (-1, NOT_USD, "budget: -1 is not a non-negative amount in USD"),
        (None, NOT_AN_AMOUNT, "budget: None is not an amount"),
    ],
)
def test_as_budget_names_the_field_it_is_given(value: object, expected: str, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        as_budget(value, "budget")  # type: ignore[arg-type]
    assert refusal(raised.value) == ("budget", value, expected, message)


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("0", "0"),
        (0, "0"),
        (0.1, "0.1"),  # a float is read by its shortest repr, not its binary value
        (1e-07, "1E-7"),
        (3, "3"),
        ("2.50", "2.50"),
        (" 7 ", "7"),
        (Decimal("0.00"), "0.00"),
    ],
)
def test_as_budget_accepts_non_negative_amounts_as_the_exact_decimal(
    value: object, amount: str
) -> None:
    result = as_budget(value)  # type: ignore[arg-type]
    assert type(result) is Decimal
    assert str(result) == amount


def test_as_budget_returns_a_decimal_as_given() -> None:
    given = Decimal("1.50")
    assert as_budget(given) is given
    assert str(as_budget(given)) == "1.50"


# --- check_budget and BudgetExceededError ------------------------------------------------------


def test_check_budget_refuses_a_cost_over_the_budget_naming_what_it_is() -> None:
    with pytest.raises(BudgetExceededError) as raised:
        check_budget(Decimal("2"), Decimal("1.5"), "batch")
    error = raised.value
    assert (error.cost, error.budget) == (Decimal("2"), Decimal("1.5"))
    assert str(error) == "estimated cost $2.00 of this batch exceeds the budget $1.50"


def test_check_budget_calls_it_a_request_by_default() -> None:
    with pytest.raises(BudgetExceededError) as raised:
        check_budget(Decimal("0.003"), Decimal("0"))
    assert str(raised.value) == "estimated cost $0.003 of this request exceeds the budget $0.00"


@pytest.mark.parametrize(
    ("cost", "budget"),
    [
        (Decimal("1"), Decimal("1")),  # exactly the budget is within it
        (Decimal("1"), Decimal("1.000")),
        (Decimal("0.99"), Decimal("1")),
        (Decimal("5"), None),  # no budget: anything goes
    ],
)
def test_check_budget_lets_a_cost_at_or_under_the_budget_through(
    cost: Decimal, budget: Decimal | None
) -> None:
    assert check_budget(cost, budget) is None


# --- prepare_request ---------------------------------------------------------------------------

DEFAULT_BODY = {
    "prompt": "a fox",
    "seed": 42,
    "steps": 4,
    "width": 1024,
    "height": 1024,
    "image_num": 1,
    "response_image_type": "png",
}


def test_prepare_request_fills_every_default_and_prices_the_body() -> None:
    body, cost = prepare_request({"prompt": "a fox", "seed": 42})
    assert body == DEFAULT_BODY
    assert cost == Decimal("0.003")
    assert str(cost) == "0.003"


def test_prepare_request_sends_every_given_field_as_given() -> None:
    fields = {
        "prompt": "p",
        "seed": 0,
        "steps": 100,
        "width": 64,
        "height": 2048,
        "image_num": 8,
        "response_image_type": "webp",
    }
    body, cost = prepare_request(fields)
    assert body == fields
    # 0.003 * 64 * 2048 * 100 * 8 / 4194304
    assert str(cost) == "0.075"


def test_prepare_request_draws_the_seed_from_the_spec_range_when_none_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn: list[tuple[int, int]] = []

    def randint(low: int, high: int) -> int:
        drawn.append((low, high))
        return 123

    monkeypatch.setattr(random, "randint", randint)
    body, _ = prepare_request({"prompt": "a fox"})
    assert body == DEFAULT_BODY | {"seed": 123}
    body, _ = prepare_request({"prompt": "a fox", "seed": None, "response_image_type": None})
    assert body == DEFAULT_BODY | {"seed": 123}
    assert drawn == [(0, 4294967295), (0, 4294967295)]


def test_random_seed_is_uniform_over_the_whole_spec_range() -> None:
    random.seed(20240101)
    expected = random.randint(0, 4294967295)
    random.seed(20240101)
    assert random_seed() == expected


def test_prepare_request_sends_whole_floats_as_integers() -> None:
    body, cost = prepare_request(
        {"prompt": "a fox", "seed": 42.0, "width": 512.0, "height": 512.0, "steps": 4.0}
    )
    assert body == DEFAULT_BODY | {"width": 512, "height": 512}
    assert [type(body[name]) for name in ("seed", "width", "height", "steps")] == [int] * 4
    assert str(cost) == "0.00075"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", "x"),
        ("prompt", "x" * 1024),
        ("seed", 0),
        ("seed", 4294967295),
        ("steps", 1),
        ("steps", 100),
        ("width", 64),
        ("width", 2048),
        ("height", 64),
        ("height", 2048),
        ("image_num", 1),
        ("image_num", 8),
        ("response_image_type", "png"),
        ("response_image_type", "webp"),
        ("response_image_type", "jpeg"),
    ],
)
def test_prepare_request_accepts_each_field_at_its_bounds(field: str, value: object) -> None:
    body, _ = prepare_request({"prompt": "a fox", "seed": 42, field: value})
    assert body[field] == value


# Each request field just outside its range, of the wrong type, or None where None is not a
# default: the exact error, in the spec's own words.
BAD_FIELDS = [
    ("prompt", "", PROMPT, "prompt: '' is not a string of 1 to 1024 characters"),
    ("prompt", 5, PROMPT, "prompt: 5 is not a string of 1 to 1024 characters"),
    ("prompt", None, PROMPT, "prompt: None is not a string of 1 to 1024 characters"),
    ("prompt", ["a"], PROMPT, "prompt: ['a'] is not a string of 1 to 1024 characters"),
    ("seed", -1, SEED, "seed: -1 is not an integer in [0, 4294967295]"),
    ("seed", 4294967296, SEED, "seed: 4294967296 is not an integer in [0, 4294967295]"),
    ("seed", True, SEED, "seed: True is not an integer in [0, 4294967295]"),
    ("seed", "1", SEED, "seed: '1' is not an integer in [0, 4294967295]"),
    ("seed", 1.5, SEED, "seed: 1.5 is not an integer in [0, 4294967295]"),
    ("steps", 0, STEPS, "steps: 0 is not an integer in [1, 100]"),
    ("steps", 101, STEPS, "steps: 101 is not an integer in [1, 100]"),
    ("steps", None, STEPS, "steps: None is not an integer in [1, 100]"),
    ("steps", False, STEPS, "steps: False is not an integer in [1, 100]"),
    ("width", 63, WIDTH, "width: 63 is not an integer in [64, 2048]"),
    ("width", 2049, WIDTH, "width: 2049 is not an integer in [64, 2048]"),
    ("width", 63.0, WIDTH, "width: 63 is not an integer in [64, 2048]"),
    ("width", 512.5, WIDTH, "width: 512.5 is not an integer in [64, 2048]"),
    ("width", "512", WIDTH, "width: '512' is not an integer in [64, 2048]"),
    ("width", None, WIDTH, "width: None is not an integer in [64, 2048]"),
    ("width", True, WIDTH, "width: True is not an integer in [64, 2048]"),
    ("height", 63, WIDTH, "height: 63 is not an integer in [64, 2048]"),
    ("height", 2049, WIDTH, "height: 2049 is not an integer in [64, 2048]"),
    ("height", None, WIDTH, "height: None is not an integer in [64, 2048]"),
    ("image_num", 0, IMAGE_NUM, "image_num: 0 is not an integer in [1, 8]"),
    ("image_num", 9, IMAGE_NUM, "image_num: 9 is not an integer in [1, 8]"),
    ("image_num", None, IMAGE_NUM, "image_num: None is not an integer in [1, 8]"),
    (
        "response_image_type",
        "gif",
        IMAGE_TYPE,
        "response_image_type: 'gif' is not one of 'png', 'webp', 'jpeg'",
    ),
    (
        "response_image_type",
        "PNG",
        IMAGE_TYPE,
        "response_image_type: 'PNG' is not one of 'png', 'webp', 'jpeg'",
    ),
    (
        "response_image_type",
        1,
        IMAGE_TYPE,
        "response_image_type: 1 is not one of 'png', 'webp', 'jpeg'",
    ),
]


@pytest.mark.parametrize(("field", "value", "expected", "message"), BAD_FIELDS)
def test_prepare_request_refuses_a_bad_field_with_the_exact_error(
    field: str, value: object, expected: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        prepare_request({"prompt": "a fox", "seed": 42, field: value})
    shown_value = 63 if value == 63.0 and isinstance(value, float) else value
    assert refusal(raised.value) == (field, shown_value, expected, message)


def test_a_whole_float_out_of_range_is_reported_as_the_integer_it_reads_as() -> None:
    with pytest.raises(ValidationError) as raised:
        validate_field("width", 63.0)
    assert type(raised.value.value) is int


def test_prepare_request_cuts_a_long_prompt_in_the_message_and_gives_its_length() -> None:
    prompt = "x" * 1025
    with pytest.raises(ValidationError) as raised:
        prepare_request({"prompt": prompt})
    assert refusal(raised.value) == (
        "prompt",
        prompt,
        PROMPT,
        "prompt: '" + "x" * 56 + "... (1025 characters) is not a string of 1 to 1024 characters",
    )


@pytest.mark.parametrize("name", ["negative_prompt", "response_image_format", "Width"])
def test_prepare_request_refuses_a_field_the_spec_does_not_know(name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        prepare_request({"prompt": "a fox", name: "x"})
    assert refusal(raised.value) == (
        name,
        "x",
        KNOWN,
        f"{name}: unknown field; known fields: {KNOWN}",
    )


def test_prepare_request_refuses_a_missing_prompt_as_missing() -> None:
    with pytest.raises(ValidationError) as raised:
        prepare_request({"seed": 1})
    assert refusal(raised.value) == (
        "prompt",
        None,
        PROMPT,
        "prompt: missing; required: a string of 1 to 1024 characters",
    )


def test_prepare_request_names_the_first_bad_field_in_body_order() -> None:
    # The client's defaults come first in the body (width, height, steps, image_num).
    with pytest.raises(ValidationError) as raised:
        prepare_request({"prompt": "", "height": 1})
    assert raised.value.field == "height"


def test_prepare_request_refuses_over_budget_with_cost_and_budget() -> None:
    with pytest.raises(BudgetExceededError) as raised:
        prepare_request({"prompt": "a fox", "seed": 1}, max_cost=Decimal("0.0029999"))
    error = raised.value
    assert (error.cost, error.budget) == (Decimal("0.003"), Decimal("0.0029999"))
    assert str(error) == "estimated cost $0.003 of this request exceeds the budget $0.0029999"


@pytest.mark.parametrize("max_cost", ["0.003", 0.003, Decimal("0.00300"), 1, None])
def test_prepare_request_accepts_a_cost_exactly_at_or_under_the_budget(max_cost: object) -> None:
    body, cost = prepare_request({"prompt": "a fox", "seed": 42}, max_cost=max_cost)  # type: ignore[arg-type]
    assert (body, cost) == (DEFAULT_BODY, Decimal("0.003"))


def test_prepare_request_refuses_a_bad_budget_as_a_validation_error() -> None:
    with pytest.raises(ValidationError) as raised:
        prepare_request({"prompt": "a fox", "seed": 1}, max_cost=-1)
    assert refusal(raised.value) == (
        "max_cost",
        -1,
        NOT_USD,
        "max_cost: -1 is not a non-negative amount in USD",
    )


def test_validate_request_takes_a_body_with_exactly_the_required_fields() -> None:
    body = {"prompt": "p", "seed": 1, "steps": 1, "width": 64, "height": 64, "image_num": 1}
    assert validate_request(body) == body


def test_validate_request_names_the_first_missing_field_in_the_spec_order() -> None:
    with pytest.raises(ValidationError) as raised:
        validate_request({"prompt": "p", "steps": 1, "height": 64, "image_num": 1})
    assert refusal(raised.value) == (
        "seed",
        None,
        SEED,
        "seed: missing; required: an integer in [0, 4294967295]",
    )


def test_validate_field_checks_one_field_and_names_it() -> None:
    assert validate_field("steps", 100.0) == 100
    assert validate_field("prompt", "a") == "a"
    with pytest.raises(ValidationError) as raised:
        validate_field("image_num", 9)
    assert refusal(raised.value) == ("image_num", 9, IMAGE_NUM, "image_num: 9 is not " + IMAGE_NUM)


def test_field_schema_is_the_compiled_spec_property() -> None:
    assert field_schema("width") == {
        "type": "integer",
        "minimum": 64,
        "maximum": 2048,
        "description": "Width of the image in pixels. Range [64, 2048].",
    }
    assert field_schema("response_image_type")["default"] == "png"
    assert compiled_request_schema()["additionalProperties"] is False


def test_in_field_order_puts_the_spec_s_fields_first_and_keeps_any_other_last() -> None:
    # The shipped spec refuses an unknown field before this; a spec that allowed one would
    # still have it sent, after the fields it names.
    body = {"zzz": 1, "seed": 2, "prompt": "x"}
    ordered = in_field_order(body)
    assert list(ordered.items()) == [("prompt", "x"), ("seed", 2), ("zzz", 1)]
    assert list(in_field_order({"seed": 2, "prompt": "x"})) == ["prompt", "seed"]


# --- price -------------------------------------------------------------------------------------

# By hand from the spec: 0.003 * width * height * steps * image_num / 4194304.
PRICES = [
    (512, 512, 4, 1, "0.00075"),
    (1024, 1024, 4, 1, "0.003"),
    (1024, 768, 4, 2, "0.0045"),
    (2048, 2048, 4, 1, "0.012"),
    (2048, 2048, 100, 8, "2.4"),
    (64, 64, 1, 1, "0.0000029296875"),
    (1000, 1000, 3, 1, "0.0021457672119140625"),
    (64, 128, 3, 5, "0.000087890625"),
]


@pytest.mark.parametrize(("width", "height", "steps", "image_num", "price"), PRICES)
def test_estimate_cost_is_the_exact_price_written_without_exponent_or_trailing_zeros(
    width: int, height: int, steps: int, image_num: int, price: str
) -> None:
    cost = estimate_cost(width, height, steps, image_num)
    assert type(cost) is Decimal
    assert str(cost) == price
    body = {"width": width, "height": height, "steps": steps, "image_num": image_num}
    assert str(request_cost(body)) == price
    assert str(_exact_price(width * height, steps, image_num)) == price


def test_estimate_cost_prices_one_image_unless_told_otherwise() -> None:
    assert str(estimate_cost(512, 512, 4)) == "0.00075"
    assert str(estimate_cost(512.0, 512.0, 4.0, 2.0)) == "0.0015"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "field", "value", "expected"),
    [
        ((63, 512, 4, 1), "width", 63, WIDTH),
        ((512, 2049, 4, 1), "height", 2049, WIDTH),
        ((512, 512, 0, 1), "steps", 0, STEPS),
        ((512, 512, 4, 9), "image_num", 9, IMAGE_NUM),
        ((512, 512, 4, True), "image_num", True, IMAGE_NUM),
    ],
)
def test_estimate_cost_refuses_an_argument_naming_it(
    arguments: tuple[int, int, int, int], field: str, value: object, expected: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        estimate_cost(*arguments)
    assert refusal(raised.value) == (
        field,
        value,
        expected,
        f"{field}: {value!r} is not {expected}",
    )


@pytest.mark.parametrize(
    ("amount", "plain"),
    [
        ("0.000750", "0.00075"),
        ("2.400", "2.4"),
        ("10.000", "10"),
        ("100", "100"),
        ("1E+3", "1000"),
        ("1", "1"),
        ("0.000", "0"),
        ("0.0000029296875", "0.0000029296875"),
    ],
)
def test_plain_drops_trailing_zeros_without_exponent_notation(amount: str, plain: str) -> None:
    result = _plain(Decimal(amount))
    assert str(result) == plain
    assert result == Decimal(amount)


# --- _schema: SchemaViolation ------------------------------------------------------------------


def test_a_schema_violation_keeps_what_it_was_given() -> None:
    violation = SchemaViolation(("images", 1), 7, "7 is bad", "good")
    assert violation.args == (("images", 1), 7, "7 is bad", "good")
    assert (violation.location, violation.value, violation.problem, violation.expected) == (
        ("images", 1),
        7,
        "7 is bad",
        "good",
    )
    assert violation.field == "images.1"
    assert str(violation) == "images.1: 7 is bad"


def test_a_violation_of_the_whole_body_is_located_at_body() -> None:
    violation = SchemaViolation((), [], "wrong", "an object")
    assert violation.field == "body"
    assert str(violation) == "body: wrong"


def test_within_puts_the_outer_keys_in_front_and_returns_the_same_violation() -> None:
    violation = SchemaViolation(("image_url",), "x", "p", "e")
    assert violation.within("images", 0) is violation
    assert violation.location == ("images", 0, "image_url")
    assert str(violation) == "images.0.image_url: p"


def test_a_violation_written_only_when_read_pickles_and_copies_with_its_message() -> None:
    # `refused` leaves the message unwritten (issue 22): a copy or a pickle writes it out, and
    # the copy is a SchemaViolation again, not a bare exception.
    violation = SchemaViolation.refused({"type": "integer"}, "7", ("width",))
    assert repr(violation) == "SchemaViolation(('width',), '7')"  # where and what, unwritten
    for copied in (pickle.loads(pickle.dumps(violation)), copy.copy(violation)):  # noqa: S301
        assert type(copied) is SchemaViolation
        assert (copied.location, copied.value, copied.problem, copied.expected) == (
            ("width",),
            "7",
            "'7' is not an integer",
            "an integer",
        )
        assert str(copied) == "width: '7' is not an integer"


def test_a_string_holding_a_lone_surrogate_is_refused_naming_it_and_where() -> None:
    # Python lets a str hold one (a JSON `\\ud800` escape, an undecodable byte of a command
    # line); it is no character and cannot be sent. Text outside ASCII without one conforms.
    schema = compile_schema({"type": "string", "maxLength": 9})
    assert conform(schema, "café \u00e9!", ("prompt",)) == "café \u00e9!"
    with pytest.raises(SchemaViolation) as raised:
        conform(schema, "café \ud800!", ("prompt",))
    assert refusal(raised.value) == (
        "prompt",
        "café \ud800!",
        "a string of at most 9 characters",
        "prompt: 'café \\ud800!' holds U+D800 at character 6, a lone surrogate: not Unicode "
        "text, so it cannot be sent as UTF-8",
    )


# --- _schema: compile_schema -------------------------------------------------------------------

CUSTOM_SPEC: dict[str, Any] = {
    "components": {
        "schemas": {
            "Small": {"type": "integer", "maximum": 3, "description": "small"},
            "Wrapped": {"allOf": [{"$ref": "#/components/schemas/Small"}], "x-note": 1},
        }
    }
}
SMALL = {"type": "integer", "maximum": 3, "description": "small"}
SMALL_REF = {"$ref": "#/components/schemas/Small"}


def test_compile_schema_merges_all_of_and_keeps_only_description_and_default() -> None:
    compiled = compile_schema(
        {
            "title": "t",
            "example": "png",
            "x-also-named": ["x"],
            "allOf": [{"$ref": "#/components/schemas/ImageType"}],
            "default": "png",
            "description": "d",
        }
    )
    assert compiled == {
        "type": "string",
        "enum": ["png", "webp", "jpeg"],
        "description": "d",
        "default": "png",
    }


def test_compile_schema_goes_on_past_an_annotation() -> None:
    compiled = compile_schema({"description": "d", "type": "integer", "minimum": 1})
    assert compiled == {"description": "d", "type": "integer", "minimum": 1}


def test_compile_schema_resolves_every_ref_in_the_document_it_is_given() -> None:
    schema = {
        "type": "object",
        "properties": {"a": SMALL_REF, "b": {"$ref": "#/components/schemas/Wrapped"}},
        "additionalProperties": SMALL_REF,
        "required": ["a"],
    }
    assert compile_schema(schema, CUSTOM_SPEC) == {
        "type": "object",
        "properties": {"a": SMALL, "b": SMALL},
        "additionalProperties": SMALL,
        "required": ["a"],
    }
    assert compile_schema({"type": "array", "items": SMALL_REF}, CUSTOM_SPEC) == {
        "type": "array",
        "items": SMALL,
    }
    assert compile_schema({"oneOf": [SMALL_REF, {"type": "string"}]}, CUSTOM_SPEC) == {
        "oneOf": [SMALL, {"type": "string"}]
    }
    assert compile_schema({"anyOf": [{"type": "string"}, SMALL_REF]}, CUSTOM_SPEC) == {
        "anyOf": [{"type": "string"}, SMALL]
    }
    assert compile_schema(SMALL_REF, CUSTOM_SPEC) == SMALL


def test_compile_schema_keeps_additional_properties_false_and_true_as_they_are() -> None:
    assert compile_schema({"type": "object", "additionalProperties": False}) == {
        "type": "object",
        "additionalProperties": False,
    }
    assert compile_schema({"type": "object", "additionalProperties": True}) == {
        "type": "object",
        "additionalProperties": True,
    }


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "integer", "exclusiveMinimum": 0}, "exclusiveMinimum"),
        ({"type": "integer", "exclusiveMaximum": 9}, "exclusiveMaximum"),
        ({"type": "number", "multipleOf": 2}, "multipleOf"),
        ({"type": "array", "contains": {"type": "string"}}, "contains"),
        ({"type": "array", "additionalItems": False}, "additionalItems"),
        (
            {"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True}}},
            "uniqueItems",
        ),
        ({"type": "array", "items": {"type": "string", "nullable": True}}, "nullable"),
        ({"oneOf": [{"type": "string", "const": "a"}]}, "const"),
        ({"anyOf": [{"not": {"type": "string"}}]}, "not"),
        ({"type": "object", "additionalProperties": {"minProperties": 1}}, "minProperties"),
    ],
)
def test_compile_schema_refuses_a_keyword_it_cannot_check_wherever_it_is(
    schema: dict[str, Any], keyword: str
) -> None:
    with pytest.raises(NotImplementedError) as raised:
        compile_schema(schema)
    assert str(raised.value) == f"the spec uses {keyword!r}, which novita_flux cannot check yet"


# --- _schema: describe and show ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "integer", "minimum": 64, "maximum": 2048}, "an integer in [64, 2048]"),
        ({"type": "integer", "minimum": 0}, "an integer >= 0"),
        ({"type": "integer", "maximum": 9}, "an integer <= 9"),
        ({"type": "integer"}, "an integer"),
        ({"type": "number", "minimum": 0.5, "maximum": 2}, "a number in [0.5, 2]"),
        ({"type": "number", "minimum": 0}, "a number >= 0"),
        ({"type": "number", "maximum": 1.5}, "a number <= 1.5"),
        ({"type": "number"}, "a number"),
        ({"type": "string", "minLength": 1, "maxLength": 3}, "a string of 1 to 3 characters"),
        ({"type": "string", "minLength": 2}, "a string of at least 2 characters"),
        ({"type": "string", "maxLength": 5}, "a string of at most 5 characters"),
        ({"type": "string"}, "a string"),
        ({"type": "string", "format": "date"}, "a string"),
        ({"type": "string", "format": "uri"}, "a URI"),
        ({"type": "string", "format": "uri", "maxLength": 9}, "a URI of at most 9 characters"),
        ({"type": "array", "minItems": 1, "maxItems": 8}, "an array of 1 to 8 items"),
        ({"type": "array", "minItems": 2}, "an array of at least 2 items"),
        ({"type": "array", "maxItems": 3}, "an array of at most 3 items"),
        ({"type": "string", "pattern": "^[0-9]+$"}, "a string matching '^[0-9]+$'"),
        (
            {"type": "string", "pattern": "^a", "minLength": 1, "maxLength": 2},
            "a string matching '^a' of 1 to 2 characters",
        ),
        ({"enum": ["png", 1, None]}, "one of 'png', 1, None"),
        ({"type": "string", "enum": ["a"], "minLength": 1}, "one of 'a'"),
        (
            {
                "oneOf": [
                    {"type": "integer", "minimum": 0},
                    {"type": "string", "pattern": "^[0-9]+$"},
                ]
            },
            TTL,
        ),
        ({"anyOf": [{"type": "boolean"}, {"type": "array"}]}, "true or false or an array"),
        ({"oneOf": [{"type": "object"}], "anyOf": [{"type": "array"}]}, "an object"),
        ({"type": "object"}, "an object"),
        ({"type": "array"}, "an array"),
        ({"type": "boolean"}, "true or false"),
        ({"type": "null"}, "any value"),
        ({}, "any value"),
    ],
)
def test_describe_says_what_a_conforming_value_looks_like(
    schema: dict[str, Any], text: str
) -> None:
    assert describe(schema) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (5, "5"),
        ("abc", "'abc'"),
        (None, "None"),
        ("x" * 20, "'" + "x" * 20 + "'"),
        ("x" * 21, "'" + "x" * 21 + "' (21 characters)"),
        ("x" * 58, "'" + "x" * 58 + "' (58 characters)"),  # a repr of exactly 60: kept whole
        ("x" * 59, "'" + "x" * 56 + "... (59 characters)"),  # 61: cut to 57 and '...'
        (list(range(30)), "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16..."),
        (b"x" * 57, "b'" + "x" * 57 + "'"),  # 60 characters, not a string: no length given
        (b"x" * 58, "b'" + "x" * 55 + "..."),
    ],
)
def test_show_cuts_a_long_repr_at_60_and_gives_a_long_strings_length(
    value: object, text: str
) -> None:
    assert show(value) == text


def test_show_cuts_at_the_limit_it_is_given() -> None:
    assert show("abcdef", 5) == "'a..."
    assert show("abc", 5) == "'abc'"
    assert show("x" * 30, 10) == "'xxxxxx... (30 characters)"


# --- _schema: conform, keyword by keyword ------------------------------------------------------


def violation_of(schema: dict[str, Any], value: Any, location: tuple[str | int, ...] = ()) -> Any:
    with pytest.raises(SchemaViolation) as raised:
        conform(compile_schema(schema), value, location)
    violation = raised.value
    return (violation.location, violation.value, violation.expected, str(violation))


INTEGER_1_3 = {"type": "integer", "minimum": 1, "maximum": 3}


@pytest.mark.parametrize(
    ("schema", "value", "result"),
    [
        (INTEGER_1_3, 1, 1),
        (INTEGER_1_3, 3, 3),
        (INTEGER_1_3, 2.0, 2),
        ({"type": "integer", "maximum": 3}, -(10**20), -(10**20)),
        ({"type": "integer", "minimum": 0}, 10**20, 10**20),
        ({"type": "integer", "minimum": 0}, 0, 0),
        ({"type": "integer", "maximum": 3}, 3, 3),
        ({"type": "integer"}, -5.0, -5),
        ({"type": "number", "minimum": 0.5, "maximum": 2}, 0.5, 0.5),
        ({"type": "number", "minimum": 0.5, "maximum": 2}, 2, 2),
        ({"type": "number", "minimum": 0.5}, 1e300, 1e300),
        ({"type": "number", "maximum": 2}, -1e300, -1e300),
        ({"type": "number"}, -3, -3),
        ({"type": "string"}, "", ""),
        ({"type": "string", "minLength": 2, "maxLength": 3}, "ab", "ab"),
        ({"type": "string", "minLength": 2, "maxLength": 3}, "abc", "abc"),
        ({"type": "string", "minLength": 2}, "x" * 5000, "x" * 5000),
        ({"type": "string", "format": "uri"}, "https://h/x", "https://h/x"),
        # A URI needs a scheme, not an authority (RFC 3986): downloading it is another matter.
        ({"type": "string", "format": "uri"}, "mailto:x", "mailto:x"),
        ({"type": "string", "pattern": "^png$"}, "png", "png"),
        ({"type": "string", "format": "date"}, "not a date", "not a date"),
        ({"type": "string", "pattern": "[0-9]"}, "a1b", "a1b"),  # unanchored, like JSON Schema
        ({"type": "boolean"}, True, True),
        ({"type": "boolean"}, False, False),
        ({"enum": ["png", 2]}, 2, 2),
        ({"type": "string", "enum": ["png", "webp"]}, "webp", "webp"),
        ({"type": "integer", "enum": [1, 2]}, 2.0, 2),
        ({}, {"any": ["thing"]}, {"any": ["thing"]}),
    ],
)
def test_conform_accepts_and_returns_the_value_as_json_meant_it(
    schema: dict[str, Any], value: Any, result: Any
) -> None:
    conformed = conform(compile_schema(schema), value)
    assert conformed == result
    assert type(conformed) is type(result)


def test_conform_keeps_a_number_as_the_number_it_is() -> None:
    assert type(conform(compile_schema({"type": "number"}), 1.0)) is float


@pytest.mark.parametrize(
    ("schema", "value", "expected", "message"),
    [
        (INTEGER_1_3, 0, "an integer in [1, 3]", "body: 0 is not an integer in [1, 3]"),
        (INTEGER_1_3, 4, "an integer in [1, 3]", "body: 4 is not an integer in [1, 3]"),
        (INTEGER_1_3, True, "an integer in [1, 3]", "body: True is not an integer in [1, 3]"),
        (INTEGER_1_3, 2.5, "an integer in [1, 3]", "body: 2.5 is not an integer in [1, 3]"),
        (INTEGER_1_3, "2", "an integer in [1, 3]", "body: '2' is not an integer in [1, 3]"),
        (INTEGER_1_3, None, "an integer in [1, 3]", "body: None is not an integer in [1, 3]"),
        ({"type": "integer", "maximum": 3}, 4, "an integer <= 3", "body: 4 is not an integer <= 3"),
        (
            {"type": "integer", "minimum": 0},
            -1,
            "an integer >= 0",
            "body: -1 is not an integer >= 0",
        ),
        ({"type": "integer"}, [], "an integer", "body: [] is not an integer"),
        (
            {"type": "number", "minimum": 0.5, "maximum": 2},
            0.49,
            "a number in [0.5, 2]",
            "body: 0.49 is not a number in [0.5, 2]",
        ),
        (
            {"type": "number", "minimum": 0.5, "maximum": 2},
            2.01,
            "a number in [0.5, 2]",
            "body: 2.01 is not a number in [0.5, 2]",
        ),
        (
            {"type": "number", "minimum": 0},
            -0.1,
            "a number >= 0",
            "body: -0.1 is not a number >= 0",
        ),
        ({"type": "number", "maximum": 2}, 3, "a number <= 2", "body: 3 is not a number <= 2"),
        ({"type": "number"}, True, "a number", "body: True is not a number"),
        ({"type": "number"}, "1", "a number", "body: '1' is not a number"),
        ({"type": "number"}, None, "a number", "body: None is not a number"),
        ({"type": "string"}, 5, "a string", "body: 5 is not a string"),
        ({"type": "string"}, None, "a string", "body: None is not a string"),
        (
            {"type": "string", "minLength": 2, "maxLength": 3},
            "a",
            "a string of 2 to 3 characters",
            "body: 'a' is not a string of 2 to 3 characters",
        ),
        (
            {"type": "string", "minLength": 2, "maxLength": 3},
            "abcd",
            "a string of 2 to 3 characters",
            "body: 'abcd' is not a string of 2 to 3 characters",
        ),
        (
            {"type": "string", "maxLength": 3},
            "abcd",
            "a string of at most 3 characters",
            "body: 'abcd' is not a string of at most 3 characters",
        ),
        ({"type": "string", "format": "uri"}, "h/x", "a URI", "body: 'h/x' is not a URI"),
        # RFC 3986 (what `format: uri` means): no space, nothing before the scheme, no IRI.
        (
            {"type": "string", "format": "uri"},
            "http://h/a b",
            "a URI",
            "body: 'http://h/a b' is not a URI",
        ),
        (
            {"type": "string", "format": "uri"},
            "\nhttp://h/",
            "a URI",
            "body: '\\nhttp://h/' is not a URI",
        ),
        (
            {"type": "string", "format": "uri"},
            "http://h/é",
            "a URI",
            "body: 'http://h/é' is not a URI",
        ),
        ({"type": "string", "format": "uri"}, "//h/x", "a URI", "body: '//h/x' is not a URI"),
        (
            {"type": "string", "format": "uri"},
            "http://[x",
            "a URI",
            "body: 'http://[x' is not a URI",
        ),
        ({"type": "string", "format": "uri"}, "", "a URI", "body: '' is not a URI"),
        (
            {"type": "string", "pattern": "[0-9]"},
            "ab",
            "a string matching '[0-9]'",
            "body: 'ab' is not a string matching '[0-9]'",
        ),
        # ECMA-262 (what `pattern` means): `$` is the very end, `\d` ASCII's digits.
        (
            {"type": "string", "pattern": "^png$"},
            "png\n",
            "a string matching '^png$'",
            "body: 'png\\n' is not a string matching '^png$'",
        ),
        (
            {"type": "string", "pattern": "^\\d$"},
            "\u0663",
            "a string matching '^\\\\d$'",
            "body: '\u0663' is not a string matching '^\\\\d$'",
        ),
        ({"type": "boolean"}, 1, "true or false", "body: 1 is not true or false"),
        ({"type": "boolean"}, "true", "true or false", "body: 'true' is not true or false"),
        ({"type": "boolean"}, None, "true or false", "body: None is not true or false"),
        ({"enum": ["png", 2]}, "gif", "one of 'png', 2", "body: 'gif' is not one of 'png', 2"),
        (
            {"type": "string", "enum": ["png", "webp"]},
            1,
            "one of 'png', 'webp'",
            "body: 1 is not one of 'png', 'webp'",
        ),
        ({"type": "array"}, "x", "an array", "body: 'x' is not an array"),
        (
            {"type": "array", "minItems": 1, "maxItems": 2},
            [],
            "an array of 1 to 2 items",
            "body: [] is not an array of 1 to 2 items",
        ),
        (
            {"type": "array", "minItems": 1, "maxItems": 2},
            [1, 2, 3],
            "an array of 1 to 2 items",
            "body: [1, 2, 3] is not an array of 1 to 2 items",
        ),
        ({"type": "array"}, (1,), "an array", "body: (1,) is not an array"),
        ({"type": "object"}, [], "an object", "body: [] is not an object"),
        ({"type": "object"}, None, "an object", "body: None is not an object"),
    ],
)
def test_conform_refuses_with_the_exact_violation(
    schema: dict[str, Any], value: Any, expected: str, message: str
) -> None:
    assert violation_of(schema, value) == ((), value, expected, message)


def test_conform_refuses_a_nan_number() -> None:
    nan = float("nan")
    location, value, expected, message = violation_of({"type": "number", "minimum": 0}, nan)
    assert (location, value is nan, expected, message) == (
        (),
        True,
        "a number >= 0",
        "body: nan is not a number >= 0",
    )
    assert math.isnan(violation_of({"type": "integer"}, nan)[1])


def test_conform_places_a_violation_at_the_location_it_is_given() -> None:
    assert violation_of(INTEGER_1_3, 9, ("steps",)) == (
        ("steps",),
        9,
        "an integer in [1, 3]",
        "steps: 9 is not an integer in [1, 3]",
    )


# --- _schema: arrays ---------------------------------------------------------------------------

INTEGERS = {"type": "array", "items": {"type": "integer"}}


def test_an_array_without_items_is_returned_as_it_is() -> None:
    value = [1, "a", None]
    assert conform(compile_schema({"type": "array"}), value) is value


def test_an_array_that_needs_no_change_is_returned_itself() -> None:
    value = [1, 2]
    assert conform(compile_schema(INTEGERS), value) is value
    empty: list[int] = []
    assert conform(compile_schema(INTEGERS), empty) is empty


def test_an_array_with_a_whole_float_is_copied_never_changed_in_place() -> None:
    value = [1, 2.0, 3]
    conformed = conform(compile_schema(INTEGERS), value)
    assert conformed == [1, 2, 3]
    assert [type(item) for item in conformed] == [int, int, int]
    assert [type(item) for item in value] == [int, float, int]


def test_an_array_names_the_index_of_the_bad_item() -> None:
    assert violation_of(INTEGERS, [1, "b"]) == ((1,), "b", "an integer", "1: 'b' is not an integer")
    assert violation_of(INTEGERS, [1, 2, "b"], ("xs",)) == (
        ("xs", 2),
        "b",
        "an integer",
        "xs.2: 'b' is not an integer",
    )


# --- _schema: objects --------------------------------------------------------------------------

CLOSED = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"type": "string"}},
}
REQUIRED = {
    "type": "object",
    "properties": {"a": {"type": "integer", "minimum": 0}, "b": {}},
    "required": ["a", "b"],
}


def test_an_object_without_properties_accepts_any_keys_and_is_returned_itself() -> None:
    value = {"a": 1, "b": [2.0]}
    assert conform(compile_schema({"type": "object"}), value) is value


def test_a_closed_object_takes_all_of_its_properties() -> None:
    value = {"a": 1, "b": "x"}
    assert conform(compile_schema(CLOSED), value) is value


def test_a_closed_object_names_its_first_unknown_key_and_the_known_ones() -> None:
    assert violation_of(CLOSED, {"a": 1, "c": 2, "d": 3}) == (
        ("c",),
        2,
        "a, b",
        "c: unknown field; known fields: a, b",
    )


def test_an_unknown_key_is_reported_before_a_missing_one() -> None:
    assert violation_of(CLOSED | {"required": ["a"]}, {"c": 1}) == (
        ("c",),
        1,
        "a, b",
        "c: unknown field; known fields: a, b",
    )


def test_an_object_with_exactly_its_required_keys_is_accepted() -> None:
    value = {"a": 0, "b": None}
    assert conform(compile_schema(REQUIRED), value) is value


def test_a_missing_key_is_named_first_in_the_required_order_with_its_description() -> None:
    assert violation_of(REQUIRED, {"b": 1}) == (
        ("a",),
        None,
        "an integer >= 0",
        "a: missing; required: an integer >= 0",
    )
    assert violation_of(REQUIRED, {"a": 1}) == (
        ("b",),
        None,
        "any value",
        "b: missing; required: any value",
    )
    assert violation_of(REQUIRED | {"required": ["b", "a"]}, {"x": 1}) == (
        ("b",),
        None,
        "any value",
        "b: missing; required: any value",
    )


def test_a_required_key_without_properties_is_described_as_any_value() -> None:
    assert violation_of({"type": "object", "required": ["a"]}, {}) == (
        ("a",),
        None,
        "any value",
        "a: missing; required: any value",
    )


def test_an_object_checks_every_known_key_after_an_extra_one() -> None:
    assert violation_of(REQUIRED, {"zzz": 1, "b": 1, "a": -1}) == (
        ("a",),
        -1,
        "an integer >= 0",
        "a: -1 is not an integer >= 0",
    )


def test_additional_properties_as_a_schema_checks_and_conforms_the_extra_keys() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": {"type": "integer"},
    }
    assert conform(compile_schema(schema), {"a": "x", "z": 2.0}) == {"a": "x", "z": 2}
    assert violation_of(schema, {"a": "x", "z": "no"}) == (
        ("z",),
        "no",
        "an integer",
        "z: 'no' is not an integer",
    )


def test_an_object_is_copied_only_when_a_value_in_it_changed() -> None:
    value = {"a": 1.0, "b": "x"}
    conformed = conform(compile_schema(CLOSED), value)
    assert conformed == {"a": 1, "b": "x"}
    assert type(conformed["a"]) is int
    assert type(value["a"]) is float  # never changed in place
    assert conformed is not value


NESTED = {
    "type": "object",
    "properties": {
        "outer": {
            "type": "object",
            "additionalProperties": False,
            "required": ["a"],
            "properties": {"a": {"type": "integer"}},
        }
    },
}


def test_a_nested_object_locates_its_violations_from_the_top() -> None:
    assert violation_of(NESTED, {"outer": {"a": 1, "b": 2}}) == (
        ("outer", "b"),
        2,
        "a",
        "outer.b: unknown field; known fields: a",
    )
    assert violation_of(NESTED, {"outer": {}}) == (
        ("outer", "a"),
        None,
        "an integer",
        "outer.a: missing; required: an integer",
    )
    assert violation_of(NESTED, {"outer": {"a": "x"}}, ("req",)) == (
        ("req", "outer", "a"),
        "x",
        "an integer",
        "req.outer.a: 'x' is not an integer",
    )
    assert violation_of(NESTED, {"outer": {"c": 1}}, ("req",)) == (
        ("req", "outer", "c"),
        1,
        "a",
        "req.outer.c: unknown field; known fields: a",
    )


# --- _schema: oneOf and anyOf ------------------------------------------------------------------

TTL_SCHEMA = {
    "oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]+$"}]
}


@pytest.mark.parametrize(("value", "result"), [(3600, 3600), (3600.0, 3600), ("3600", "3600")])
def test_one_of_takes_the_value_its_one_conforming_branch_makes(value: Any, result: Any) -> None:
    conformed = conform(compile_schema(TTL_SCHEMA), value)
    assert conformed == result
    assert type(conformed) is type(result)


@pytest.mark.parametrize("value", [-1, True, "36a", None, 1.5])
def test_one_of_refuses_a_value_no_branch_takes(value: Any) -> None:
    assert violation_of(TTL_SCHEMA, value) == ((), value, TTL, f"body: {value!r} is not {TTL}")


def test_one_of_refuses_a_value_two_branches_take() -> None:
    schema = {"oneOf": [{"type": "integer"}, {"type": "integer", "minimum": 0}]}
    assert conform(compile_schema(schema), -5) == -5
    assert violation_of(schema, 5, ("n",)) == (
        ("n",),
        5,
        "an integer or an integer >= 0",
        "n: 5 is not an integer or an integer >= 0",
    )


def test_any_of_takes_the_first_conforming_branch() -> None:
    both = compile_schema({"anyOf": [{"type": "integer"}, {"type": "integer", "minimum": 0}]})
    assert conform(both, 5) == 5
    assert conform(both, -5) == -5
    number_first = compile_schema({"anyOf": [{"type": "number"}, {"type": "integer"}]})
    assert type(conform(number_first, 2.0)) is float
    string_first = compile_schema({"anyOf": [{"type": "string"}, {"type": "integer"}]})
    assert type(conform(string_first, 2.0)) is int


def test_a_union_tries_the_next_branch_after_one_fails_deep_inside() -> None:
    schema = {
        "anyOf": [
            {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "integer"}}},
            },
            {"type": "object", "properties": {"a": {"type": "array"}}},
        ]
    }
    value = {"a": [1, "x"]}
    assert conform(compile_schema(schema), value, ("outer",)) is value


def test_any_of_refuses_a_value_no_branch_takes() -> None:
    schema = {"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}
    assert violation_of(schema, -1) == (
        (),
        -1,
        "a string or an integer >= 0",
        "body: -1 is not a string or an integer >= 0",
    )


def test_a_typed_union_checks_the_type_before_the_branches() -> None:
    schema = {
        "type": "integer",
        "oneOf": [{"type": "integer", "minimum": 0}, {"type": "integer", "maximum": -10}],
    }
    compiled = compile_schema(schema)
    assert conform(compiled, -10) == -10
    assert type(conform(compiled, 2.0)) is int
    expected = "an integer >= 0 or an integer <= -10"
    assert violation_of(schema, "5") == ((), "5", expected, f"body: '5' is not {expected}")
    assert violation_of(schema, -5) == ((), -5, expected, f"body: -5 is not {expected}")


def test_a_union_branch_without_a_type_is_tried_on_any_value() -> None:
    schema = compile_schema({"oneOf": [{"type": "string"}, {"enum": [1, 2]}]})
    assert conform(schema, "a") == "a"
    assert conform(schema, 2) == 2
    assert violation_of({"oneOf": [{"type": "string"}, {"enum": [1, 2]}]}, 3)[1] == 3


def test_a_union_does_not_try_a_branch_whose_type_cannot_take_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The reason the union looks at types first: a branch tried only to fail builds a
    # violation, which cost most of the client's own work per answer (issue 22). A str subclass
    # is not a JSON value the table knows, so it tries every branch.
    failed: list[Any] = []
    original = schema_module._fail

    def spy(schema: Any, value: Any, location: Any) -> Any:
        failed.append(value)
        return original(schema, value, location)

    compiled = compile_schema(
        {"oneOf": [{"type": "integer"}, {"type": "object"}, {"type": "string"}]}
    )
    monkeypatch.setattr(schema_module, "_fail", spy)
    assert conform(compiled, "a") == "a"
    assert conform(compiled, {}) == {}
    assert failed == []

    class Text(str):
        pass

    assert conform(compiled, Text("b")) == "b"
    assert failed == ["b", "b"]  # the integer and the object branch refused it


# --- _schema: the response, nested ------------------------------------------------------------

IMAGE = {"image_url": "https://h/x", "image_url_ttl": 3600, "image_type": "png"}


def response(*images: dict[str, Any]) -> dict[str, Any]:
    return {"images": list(images), "task": {"task_id": "t"}}


def response_violation(body: Any) -> tuple[Any, ...]:
    with pytest.raises(SchemaViolation) as raised:
        conform(compile_schema(response_schema(GENERATE)), body)
    violation = raised.value
    return (
        violation.location,
        violation.field,
        violation.value,
        violation.expected,
        str(violation),
    )


@pytest.mark.parametrize(
    ("change", "name", "value", "expected", "problem"),
    [
        ({"image_url": "h/x"}, "image_url", "h/x", "a URI", "'h/x' is not a URI"),
        ({"image_url_ttl": True}, "image_url_ttl", True, TTL, f"True is not {TTL}"),
        ({"image_url_ttl": "36a"}, "image_url_ttl", "36a", TTL, f"'36a' is not {TTL}"),
        ({"image_url_ttl": -1}, "image_url_ttl", -1, TTL, f"-1 is not {TTL}"),
        (
            {"image_type": "gif"},
            "image_type",
            "gif",
            IMAGE_TYPE_PATTERN,
            f"'gif' is not {IMAGE_TYPE_PATTERN}",
        ),
    ],
)
def test_a_bad_value_deep_in_a_response_is_located_by_index_and_key(
    change: dict[str, Any], name: str, value: Any, expected: str, problem: str
) -> None:
    field = f"images.1.{name}"
    assert response_violation(response(IMAGE, IMAGE | change)) == (
        ("images", 1, name),
        field,
        value,
        expected,
        f"{field}: {problem}",
    )


def test_a_missing_key_deep_in_a_response_is_named_with_its_description() -> None:
    image = {"image_url": "https://h/x", "image_type": "png"}
    assert response_violation(response(IMAGE, image)) == (
        ("images", 1, "image_url_ttl"),
        "images.1.image_url_ttl",
        None,
        TTL,
        f"images.1.image_url_ttl: missing; required: {TTL}",
    )
    assert response_violation({"images": []}) == (
        ("task",),
        "task",
        None,
        "an object",
        "task: missing; required: an object",
    )
    assert response_violation([]) == ((), "body", [], "an object", "body: [] is not an object")


def test_a_response_with_fields_beyond_the_spec_is_kept_whole() -> None:
    body = {
        "extra": {"seed": "1"},
        "images": [IMAGE | {"image_url_ttl": "0", "image_type": "JPG", "nsfw": None}],
        "task": {"task_id": "t", "status": "TASK_STATUS_SUCCEED"},
        "videos": [],
    }
    assert conform(compile_schema(response_schema(GENERATE)), body) is body


def test_a_response_is_copied_only_along_the_path_to_a_changed_value() -> None:
    second = IMAGE | {"image_url_ttl": 3600.0}
    body = response(IMAGE, second)
    conformed = conform(compile_schema(response_schema(GENERATE)), body)
    assert conformed == response(IMAGE, IMAGE)
    assert type(conformed["images"][1]["image_url_ttl"]) is int
    assert conformed["task"] is body["task"]
    assert conformed["images"][0] is body["images"][0]
    assert conformed["images"] is not body["images"]
    assert body["images"][1]["image_url_ttl"] == 3600.0
    assert type(body["images"][1]["image_url_ttl"]) is float


# --- _schema: the checker cache ----------------------------------------------------------------


def test_conform_never_uses_a_checker_built_for_another_schema_at_the_same_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An equal schema is not the same one: the checker is keyed by identity.
    schema = compile_schema({"type": "integer"})
    for other in (compile_schema({"type": "string"}), compile_schema({"type": "integer"})):
        stale = {id(schema): (other, lambda value, location: "stale")}
        monkeypatch.setattr(schema_module, "_CHECKERS", stale)
        assert conform(schema, 5) == 5
        assert stale[id(schema)][0] is schema


def test_conform_reuses_the_checker_it_built_for_a_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    schema = compile_schema({"type": "integer"})
    cache: dict[int, Any] = {
        id(schema): (schema, lambda value: False, lambda value, location: "cached")
    }
    monkeypatch.setattr(schema_module, "_CHECKERS", cache)
    assert conform(schema, 5) == "cached"
    cache[id(schema)] = (schema, lambda value: True, lambda value, location: "cached")
    assert conform(schema, 5) == 5  # what fits as it stands is handed back, the tree not asked


def test_the_checker_cache_is_cleared_once_it_holds_more_than_256(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache: dict[int, Any] = {-k: ({}, None) for k in range(1, 257)}
    monkeypatch.setattr(schema_module, "_CHECKERS", cache)
    first, second = compile_schema({"type": "integer"}), compile_schema({"type": "string"})
    assert conform(first, 1) == 1
    assert len(cache) == 257  # 256 held: not yet over the bound
    assert conform(second, "a") == "a"
    assert list(cache) == [id(second)]


# --- _identity ---------------------------------------------------------------------------------

FOX = {
    "prompt": "a fox",
    "width": 512,
    "height": 512,
    "steps": 4,
    "image_num": 1,
    "response_image_type": "png",
}
FOX_CANONICAL = (
    '{"height":512,"image_num":1,"prompt":"a fox",'
    '"response_image_type":"png","steps":4,"width":512}'
)
FOX_KEY = "3d584469d7768868b66dbdfdb284628e"
FOX_SEED_7_KEY = "a0db71272fc8443915470d4906618538"


def test_canonical_is_sorted_compact_json_whatever_the_key_order() -> None:
    assert canonical(FOX) == FOX_CANONICAL
    assert canonical(dict(reversed(FOX.items()))) == FOX_CANONICAL


def test_canonical_keeps_unicode_as_it_is() -> None:
    assert (
        canonical({"prompt": "renard roux, café ☕ 狐"}) == '{"prompt":"renard roux, café ☕ 狐"}'
    )


def test_request_key_is_the_first_32_hex_digits_of_the_sha256_of_the_canonical_json() -> None:
    assert request_key(FOX) == FOX_KEY
    assert request_key(FOX, 1) == FOX_KEY
    assert request_key(dict(reversed(FOX.items()))) == FOX_KEY


def test_request_key_marks_the_nth_identical_line_after_the_first() -> None:
    assert request_key(FOX, 2) == FOX_KEY + "#2"
    assert request_key(FOX, 10) == FOX_KEY + "#10"


def test_request_key_hashes_unicode_as_utf8_even_a_lone_surrogate() -> None:
    assert request_key({"prompt": "renard roux, café ☕ 狐"}) == "0978c0bf743920d0f8cc08f1032274f8"
    assert request_key({"prompt": "\ud800"}) == "94378c0c0b818f58356c103f4d2583a7"


def test_normalised_fills_the_defaults_and_leaves_out_a_drawn_seed() -> None:
    request = normalised({"prompt": "a fox", "width": 512.0, "height": 512})
    assert request == FOX
    assert type(request["width"]) is int
    assert canonical(request) == FOX_CANONICAL
    assert request_key(request) == FOX_KEY
    assert normalised({"prompt": "a fox", "width": 512, "height": 512, "seed": None}) == FOX


def test_normalised_keeps_a_seed_the_fields_chose() -> None:
    request = normalised({"prompt": "a fox", "width": 512, "height": 512, "seed": 7})
    assert request == FOX | {"seed": 7}
    assert request_key(request) == FOX_SEED_7_KEY
    assert request_key(request, 2) == FOX_SEED_7_KEY + "#2"
    assert normalised({"prompt": "a fox", "seed": 0})["seed"] == 0


def test_normalised_refuses_what_the_api_would_refuse() -> None:
    with pytest.raises(ValidationError) as raised:
        normalised({"prompt": "a fox", "width": 63})
    assert str(raised.value) == "width: 63 is not an integer in [64, 2048]"


@pytest.mark.parametrize(
    ("fields", "kept"),
    [
        ({"prompt": "x"}, {"prompt": "x"}),
        ({"prompt": "x", "seed": None}, {"prompt": "x"}),
        ({"prompt": "x", "seed": 0}, {"prompt": "x", "seed": 9}),
        ({"prompt": "x", "seed": 9}, {"prompt": "x", "seed": 9}),
    ],
)
def test_without_drawn_seed_drops_the_seed_unless_the_fields_chose_one(
    fields: dict[str, Any], kept: dict[str, Any]
) -> None:
    body = {"prompt": "x", "seed": 9}
    result = without_drawn_seed(fields, body)
    assert result == kept
    assert result is not body
    assert body == {"prompt": "x", "seed": 9}
