"""Hypothesis strategies read from the spec: every range, enum and status below comes from it.

Requests are drawn field by field from the compiled request schema, so a spec that moves a bound
moves what is drawn; 200 bodies are drawn from each operation's response schema (every
operation of the spec, by operationId); broken values are derived from each schema node (every
other JSON type, one past each bound, an unknown enum value, a link that is not absolute).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TypeVar

import jsonschema
from hypothesis import example
from hypothesis import strategies as st

from novita_flux import _spec
from novita_flux._jsonstrings import ecma_pattern
from novita_flux._request import compiled_request_schema, estimate_cost
from novita_flux._schema import compile_schema
from novita_flux._spec import Schema
from scripts.spec_diff.values import QUICK, from_compiled

TestFunction = TypeVar("TestFunction", bound=Callable[..., Any])

# --- the request --------------------------------------------------------------------------------

REQUEST_SCHEMA = compiled_request_schema()
FIELDS: dict[str, Schema] = REQUEST_SCHEMA["properties"]
REQUIRED: tuple[str, ...] = tuple(REQUEST_SCHEMA["required"])
OPTIONAL: tuple[str, ...] = tuple(name for name in FIELDS if name not in REQUIRED)
DEFAULTS: dict[str, Any] = {name: s["default"] for name, s in FIELDS.items() if "default" in s}
PRICED: tuple[str, ...] = tuple(inspect.signature(estimate_cost).parameters)


def bounds(name: str) -> tuple[int, int]:
    """The spec's inclusive range of a request field, by length for a string."""
    schema = FIELDS[name]
    if schema["type"] == "string":
        return schema["minLength"], schema["maxLength"]
    return schema["minimum"], schema["maximum"]


def in_range(schema: Schema) -> st.SearchStrategy[Any]:
    """Every value the schema accepts, with both bounds drawn explicitly as well."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema["type"] == "integer":
        low, high = schema["minimum"], schema["maximum"]
        return st.sampled_from((low, high)) | st.integers(low, high)
    if schema["type"] == "string":
        low, high = schema["minLength"], schema["maxLength"]
        return (
            st.text(min_size=low, max_size=low)
            | st.text(min_size=high, max_size=high)
            | st.text(min_size=low, max_size=high)  # any unicode but lone surrogates
        )
    raise NotImplementedError(f"no strategy yet for a request field like {schema}")


def valid_requests() -> st.SearchStrategy[dict[str, Any]]:
    """Request bodies the spec accepts; optional fields are sometimes left out."""
    return st.fixed_dictionaries(
        {name: in_range(FIELDS[name]) for name in REQUIRED},
        optional={name: in_range(FIELDS[name]) for name in OPTIONAL},
    )


def extreme_request(end: int) -> dict[str, Any]:
    """Every field at its lower (end=0) or upper (end=1) bound: an explicit @example."""
    request: dict[str, Any] = {}
    for name, schema in FIELDS.items():
        if "enum" in schema:
            request[name] = schema["enum"][-end]
        elif schema["type"] == "string":
            request[name] = "虎" * bounds(name)[end]  # a character outside ASCII
        else:
            request[name] = bounds(name)[end]
    return request


def with_examples(**cases: list[Any]) -> Callable[[TestFunction], TestFunction]:
    """@example(name=value) for every listed value: explicit cases tried on every run."""
    ((name, values),) = cases.items()

    def decorate(test: TestFunction) -> TestFunction:
        for value in values:
            test = example(**{name: value})(test)
        return test

    return decorate


# --- values that break a schema -----------------------------------------------------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_OF_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "integer": st.integers(),
    "number": st.floats().filter(lambda x: not x.is_integer()),  # incl. nan and inf
    "string": st.text(),
    "array": st.lists(_SCALARS, max_size=3),
    "object": st.dictionaries(st.text(max_size=8), _SCALARS, max_size=3),
}


def not_of_type(kind: str) -> st.SearchStrategy[Any]:
    """Values of every JSON type but `kind` (a whole float counts as an integer)."""
    excluded = {kind, "integer"} if kind == "number" else {kind}
    return st.one_of([strategy for name, strategy in _OF_TYPE.items() if name not in excluded])


def out_of_range(schema: Schema) -> st.SearchStrategy[Any]:
    """Values the schema refuses: wrong types, just past and far past each bound, and more."""
    branches = schema.get("oneOf", schema.get("anyOf"))
    if branches is not None:
        # What breaks one branch may satisfy another (a string where an integer belongs): the
        # independent judge, jsonschema, keeps only what breaks them all.
        judge = jsonschema.Draft7Validator(schema)
        return st.one_of([out_of_range(branch) for branch in branches]).filter(
            lambda value: not judge.is_valid(value)
        )
    options = [not_of_type(schema["type"])]
    if schema["type"] == "integer":
        # A bool is a Python int but never a JSON integer: drawn here on top of not_of_type.
        options.append(st.booleans())
        options.append(st.integers().map(str))  # a number, but in a string
    if "minimum" in schema:
        low = schema["minimum"]
        options += [st.just(low - 1), st.integers(max_value=low - 1)]
        options.append(st.integers(max_value=low - 1).map(float))  # whole, so only the bound fails
    if "maximum" in schema:
        high = schema["maximum"]
        options += [st.just(high + 1), st.integers(min_value=high + 1)]
        options.append(st.integers(min_value=high + 1, max_value=2**64).map(float))
    if schema.get("minLength", 0) > 0:
        options.append(st.text(max_size=schema["minLength"] - 1))
    if "maxLength" in schema:
        high = schema["maxLength"]
        options.append(st.text(min_size=high + 1, max_size=high + 1))
        options.append(st.text(min_size=high + 1, max_size=2 * high))
    if "enum" in schema:
        known = schema["enum"]
        options.append(st.sampled_from(known).map(str.upper).filter(lambda s: s not in known))
        options.append(st.text().filter(lambda s: s not in known))
    if schema["type"] == "array":  # a conforming item too few or too many
        items = from_compiled(schema.get("items", {}), QUICK)
        if schema.get("minItems", 0) > 0:
            options.append(st.lists(items, max_size=schema["minItems"] - 1))
        if "maxItems" in schema:
            high = schema["maxItems"]
            options.append(st.lists(items, min_size=high + 1, max_size=high + 2))
    if schema.get("format") == "uri":  # no colon, so no scheme: a relative reference
        options.append(st.text(st.characters(exclude_characters=":")))
    if "pattern" in schema:
        pattern = ecma_pattern(schema["pattern"])  # as JSON Schema reads it, so as we do
        near = st.sampled_from(
            ["", " 3600", "3600 ", "-1", "3600.5", "1e3", "jpgg", "gif", "PNG!", "png\n", "3600\n"]
        )
        options.append((near | st.text()).filter(lambda text: pattern.search(text) is None))
    return st.one_of(options)


def just_past_the_edges() -> list[tuple[str, dict[str, Any]]]:
    """(field, request) with one field just outside its range, a bool where an integer belongs,
    or a valid value wrapped in a list: explicit @examples, so each edge is tried on every run,
    not only when drawn."""
    cases = []
    for name, schema in FIELDS.items():
        if "enum" in schema:
            bad: list[Any] = [schema["enum"][0].upper()]
        elif schema["type"] == "string":
            low, high = bounds(name)
            bad = ["x" * (low - 1), "x" * (high + 1)]
        else:
            low, high = bounds(name)
            bad = [low - 1, high + 1, True, False]
        bad.append([extreme_request(0)[name]])
        cases += [(name, extreme_request(end) | {name: value}) for value in bad for end in (0, 1)]
    return cases


@st.composite
def requests_with_one_bad_field(
    draw: st.DrawFn, none_means_default: frozenset[str] = frozenset()
) -> tuple[str, dict[str, Any]]:
    """(field, a valid request whose `field` is out of range or ill-typed).

    `none_means_default` names the fields for which None is not wrong but asks for a default
    (generate(seed=None) draws a random seed), so None is not drawn for them.
    """
    request = draw(valid_requests())
    field = draw(st.sampled_from(list(FIELDS)))
    bad = out_of_range(FIELDS[field])
    if field in none_means_default:
        bad = bad.filter(lambda value: value is not None)
    request[field] = draw(bad)
    return field, request


@st.composite
def requests_missing_a_field(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """(field, a valid request without that required field)."""
    request = draw(valid_requests())
    field = draw(st.sampled_from(REQUIRED))
    del request[field]
    return field, request


@st.composite
def requests_with_an_unknown_field(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    request = draw(valid_requests())
    field = draw(st.text(min_size=1).filter(lambda name: name not in FIELDS))
    request[field] = draw(_SCALARS)
    return field, request


# --- what a request costs -----------------------------------------------------------------------


def priced_arguments() -> st.SearchStrategy[dict[str, int]]:
    """estimate_cost's keyword arguments, each across its whole range."""
    return st.fixed_dictionaries({name: in_range(FIELDS[name]) for name in PRICED})


def budgets_around(cost: Decimal) -> st.SearchStrategy[list[Decimal | float]]:
    """max_cost values as Decimal and float: the edges of the cost every time (the cost itself,
    one step either side, the float nearest it and its neighbours) and some drawn anywhere from
    nothing to twice the cost."""
    nearest = float(cost)
    edges: list[Decimal | float] = [cost, cost.next_minus(), cost.next_plus(), nearest]
    edges += [math.nextafter(nearest, 0), math.nextafter(nearest, math.inf)]
    anywhere = st.decimals(min_value=0, max_value=cost * 2, allow_nan=False) | st.floats(
        min_value=0, max_value=float(cost * 2)
    )
    return st.lists(anywhere, max_size=3).map(lambda drawn: edges + drawn)


# --- 200 bodies ---------------------------------------------------------------------------------

RESPONSE_SCHEMAS: dict[str, Schema] = {
    operation_id: compile_schema(_spec.response_schema(operation_id, 200))
    for operation_id in _spec.operations()
}
RESPONSE_SCHEMA = RESPONSE_SCHEMAS[_spec.GENERATE]
# The spec puts no maximum on a TTL; keep it where the receive time plus the TTL is still a
# datetime (a day of margin for the test run itself).
MAX_TTL = int((datetime.max.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) - 86_400
UNSIGNED_DIGITS = "^[0-9]+$"


def _drawable(schema: Schema) -> Schema:
    """The schema with every number it leaves unbounded above (a TTL) kept below MAX_TTL, as an
    integer or as a string of digits, so that a time can still be added to it."""
    node = copy.deepcopy(schema)
    if node.get("type") == "integer" and "maximum" not in node:
        node["maximum"] = MAX_TTL
    if node.get("pattern") == UNSIGNED_DIGITS:
        node["pattern"] = f"^[0-9]{{1,{len(str(MAX_TTL)) - 1}}}$"  # below MAX_TTL too
    for key in ("properties",):
        if key in node:
            node[key] = {name: _drawable(sub) for name, sub in node[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _drawable(node[key])
    for key in ("oneOf", "anyOf", "allOf"):
        if key in node:
            node[key] = [_drawable(sub) for sub in node[key]]
    return node


def conforming_bodies(operation_id: str = _spec.GENERATE) -> st.SearchStrategy[dict[str, Any]]:
    """200 bodies the spec allows for an operation: every tolerated variant (a TTL as a number
    or a string of digits, an image type in any case or spelled jpg, an amount as a number or a
    string of digits) and extra properties anywhere (the schema does not forbid them)."""
    return from_compiled(_drawable(RESPONSE_SCHEMAS[operation_id]))


REMOVED = object()
Where = tuple[str | int, ...]


def _breakages(schema: Schema, path: Where = ()) -> Iterator[tuple[Where, Any]]:
    """Every way to break a body one node at a time: (where, REMOVED or a breaking strategy)."""
    yield path, out_of_range(schema)
    for name, sub in schema.get("properties", {}).items():
        if name in schema.get("required", ()):
            yield (*path, name), REMOVED
        yield from _breakages(sub, (*path, name))
    if "items" in schema:
        yield from _breakages(schema["items"], (*path, 0))


BREAKAGES = {operation_id: tuple(_breakages(s)) for operation_id, s in RESPONSE_SCHEMAS.items()}


def _replaced(body: Any, path: Where, value: Any) -> Any:
    if not path:
        return value
    head, *rest = path
    node = list(body) if isinstance(body, list) else dict(body)
    if not rest and value is REMOVED:
        del node[head]
    elif not rest:  # an optional field the body left out is added, broken
        node[head] = value
    else:
        node[head] = _replaced(body[head], tuple(rest), value)
    return node


@st.composite
def broken_bodies(draw: st.DrawFn, operation_id: str = _spec.GENERATE) -> bytes:
    """JSON that breaks the operation's response schema at exactly one node."""
    path, breaking = draw(st.sampled_from(BREAKAGES[operation_id]))
    value = breaking if breaking is REMOVED else draw(breaking)
    body = _replaced(draw(conforming_bodies(operation_id)), path, value)
    return json.dumps(body).encode()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def not_json() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "<html><body>502 Bad Gateway</body></html>"]) | st.text(
        max_size=200
    ).filter(lambda text: not _is_json(text))


@st.composite
def truncated_bodies(draw: st.DrawFn, operation_id: str = _spec.GENERATE) -> bytes:
    text = json.dumps(draw(conforming_bodies(operation_id)), ensure_ascii=False)
    return text[: draw(st.integers(0, len(text) - 1))].encode()


def nonconforming_bodies(operation_id: str = _spec.GENERATE) -> st.SearchStrategy[bytes]:
    """200 bodies that break the operation's contract: broken at one node, not JSON, or cut
    short."""
    return broken_bodies(operation_id) | not_json().map(str.encode) | truncated_bodies(operation_id)


# --- error answers ------------------------------------------------------------------------------

KNOWN_REASONS = _spec.known_reasons()
DOCUMENTED_ERRORS = tuple(
    status for status in _spec.documented_statuses(_spec.GENERATE) if status >= 400
)
UNDOCUMENTED_ERRORS = (408, 409, 418, 502, 504)


class ErrorAnswer(NamedTuple):
    status: int
    content: bytes
    envelope: dict[str, Any] | None  # None when the body is not JSON


def error_statuses() -> st.SearchStrategy[int]:
    return st.sampled_from(DOCUMENTED_ERRORS + UNDOCUMENTED_ERRORS) | st.integers(400, 599)


def reasons() -> st.SearchStrategy[str]:
    """The spec's known reasons, and reasons it has never heard of."""
    unknown = st.from_regex(r"[A-Z][A-Z_]{0,30}", fullmatch=True) | st.text()
    return st.sampled_from(sorted(KNOWN_REASONS)) | unknown.filter(lambda r: r not in KNOWN_REASONS)


def envelopes(status: int) -> st.SearchStrategy[dict[str, Any]]:
    """The spec's error envelope; metadata (and a task id in it, even an empty one) may be
    absent."""
    metadata = st.fixed_dictionaries({}, optional={"task_id": st.text()})
    return st.fixed_dictionaries(
        {"code": st.just(status), "reason": reasons(), "message": st.text()},
        optional={"metadata": metadata},
    )


@st.composite
def error_answers(draw: st.DrawFn, statuses: st.SearchStrategy[int] | None = None) -> ErrorAnswer:
    status = draw(error_statuses() if statuses is None else statuses)
    envelope = draw(st.none() | envelopes(status))
    if envelope is None:
        return ErrorAnswer(status, draw(not_json()).encode(), None)
    return ErrorAnswer(status, json.dumps(envelope).encode(), envelope)


def _answer(status: int, envelope: dict[str, Any]) -> ErrorAnswer:
    return ErrorAnswer(status, json.dumps(envelope).encode(), envelope)


def documented_error_answers() -> list[ErrorAnswer]:
    """The spec's own example for each documented error status, and each again with an empty
    task id: explicit @examples."""
    answers = []
    for status in DOCUMENTED_ERRORS:
        response = _spec.resolve(_spec.operation(_spec.GENERATE).body["responses"][str(status)])
        envelope = response["content"]["application/json"]["example"]
        answers.append(_answer(status, envelope))
        answers.append(_answer(status, envelope | {"metadata": {"task_id": ""}}))
    return answers


def reason_and_status_answers() -> list[ErrorAnswer]:
    """Each known reason under its own status, and each status with a body that is not JSON:
    explicit @examples, so every row of the mapping is tried on every run."""
    answers = [
        _answer(known.status, {"code": known.status, "reason": reason, "message": reason})
        for reason, known in KNOWN_REASONS.items()
    ]
    for status in DOCUMENTED_ERRORS + UNDOCUMENTED_ERRORS:
        answers.append(ErrorAnswer(status, f"<html>{status}</html>".encode(), None))
    return answers
