"""A small validator for the subset of JSON Schema the spec uses, with messages a person can act on.

It checks requests before they are sent (client), requests as they arrive (reference server) and
response bodies before they are parsed (client). A keyword it does not know makes compiling the
schema fail, so a spec that grows a new constraint can never be silently left unchecked.

Why not fastjsonschema or jsonschema: both were measured here on the spec's own schemas (a
request body and a 200, median of 5 x 20,000 calls, Python 3.11, this 2-vCPU machine): this
module's tree of checks took 3.3 and 7.2 us, fastjsonschema 2.8 and 10.5 us (and 40 ms to
import), jsonschema 70 and 133 us (and 130 ms to import). With its compiled fast half (_fits)
for values that conform as they stand, a valid request and 200 now take about 0.8 and 1.7 us.
Speed is no reason for either; what decides is what the overlay needs and neither gives: a message
that names the field, the value and the allowed range in the spec's own words
(`width: 63 is not an integer in [64, 2048]`, which is what ValidationError and the reference
server's 400s say), the conformed copy (a whole float read as the integer JSON meant), and a
refusal to compile a keyword it cannot check. Both also read `pattern` with Python's `re`, where
JSON Schema means ECMA-262 (`^png$` would accept "png\n").

Each keyword means what JSON Schema says: `pattern` is ECMA-262's and `format: uri` is RFC 3986's
(_jsonstrings); a pattern whose ECMA-262 meaning cannot be given to Python fails compilation like
an unknown keyword. tests/client/test_schema_properties.py holds this validator to an
independent one's verdict (jsonschema-rs) on values drawn for every schema of the spec.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

from novita_flux._fits import Fits, compile_fits
from novita_flux._format import shortened
from novita_flux._jsonstrings import LONE_SURROGATE as _LONE_SURROGATE
from novita_flux._jsonstrings import ecma_pattern, is_uri
from novita_flux._spec import Schema, resolve

Location = tuple[str | int, ...]

_CHECKED: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "items", "oneOf", "anyOf"}
    | {"minimum", "maximum", "minLength", "maxLength", "enum", "format", "pattern"}
    | {"minItems", "maxItems"}
)
_ANNOTATIONS: Final = frozenset({"description", "default", "example", "title", "allOf", "$ref"})


class SchemaViolation(Exception):
    """A value that does not conform to its schema, with where it is and what was expected."""

    def __init__(self, location: Location, value: Any, problem: str, expected: str) -> None:
        super().__init__(location, value, problem, expected)
        self.location = location
        self.value = value
        self._schema: Schema = {}
        self._problem: str | None = problem
        self._expected: str | None = expected

    @classmethod
    def refused(cls, schema: Schema, value: Any, location: Location) -> SchemaViolation:
        """A value `schema` refuses, its message written only when someone reads it: a `oneOf`
        branch that does not match raises one on every valid answer, and the union throws it
        away (writing it out was most of the client's own work per call, issue 22)."""
        violation = cls.__new__(cls, location, value)
        violation.location = location
        violation.value = value
        violation._schema = schema
        violation._problem = violation._expected = None
        return violation

    @property
    def expected(self) -> str:
        if self._expected is None:
            self._expected = describe(self._schema)
        return self._expected

    @property
    def problem(self) -> str:
        if self._problem is None:
            self._problem = f"{show(self.value)} is not {self.expected}"
        return self._problem

    @property
    def field(self) -> str:
        return ".".join(map(str, self.location)) or "body"

    def within(self, *outer: str | int) -> SchemaViolation:
        """The same violation, located inside `outer` (containers add their key on the way up,
        so the success path never builds a location)."""
        self.location = (*outer, *self.location)
        return self

    def __str__(self) -> str:
        return f"{self.field}: {self.problem}"

    def __reduce__(self) -> tuple[type[SchemaViolation], tuple[Any, ...]]:
        # Pickled (and so copied) with its message written out.
        return type(self), (self.location, self.value, self.problem, self.expected)


def compile_schema(schema: Schema, spec: Mapping[str, Any] | None = None) -> Schema:
    """Resolve `$ref`s (in `spec`, the shipped document unless given) and merge `allOf` into
    one plain tree, refusing unknown keywords."""
    merged: Schema = {}
    for part in resolve(schema, spec).get("allOf", ()):
        merged.update(compile_schema(part, spec))
    for key, value in resolve(schema, spec).items():
        if key.startswith("x-") or key in _ANNOTATIONS:
            if key in ("description", "default"):
                merged[key] = value
            continue
        if key not in _CHECKED:
            raise NotImplementedError(f"the spec uses {key!r}, which novita_flux cannot check yet")
        if key == "properties":
            value = {name: compile_schema(sub, spec) for name, sub in value.items()}
        elif key in ("oneOf", "anyOf"):
            value = [compile_schema(branch, spec) for branch in value]
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            value = compile_schema(value, spec)
        elif key == "pattern":
            ecma_pattern(value)  # one it cannot read as ECMA-262 fails here, not on first use
        merged[key] = value
    return merged


def describe(schema: Schema) -> str:
    """What a conforming value looks like: 'an integer in [64, 2048]'."""
    branches = schema.get("oneOf", schema.get("anyOf"))
    if branches is not None:
        return " or ".join(describe(branch) for branch in branches)
    if "enum" in schema:
        return "one of " + ", ".join(repr(choice) for choice in schema["enum"])
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        noun = "an integer" if kind == "integer" else "a number"
        if low is not None and high is not None:
            return f"{noun} in [{low}, {high}]"
        if low is not None:
            return f"{noun} >= {low}"
        return f"{noun} <= {high}" if high is not None else noun
    if kind == "string":
        low, high = schema.get("minLength"), schema.get("maxLength")
        noun = "a URI" if schema.get("format") == "uri" else "a string"
        if "pattern" in schema:
            noun += f" matching {schema['pattern']!r}"
        if low is not None and high is not None:
            return f"{noun} of {low} to {high} characters"
        if low is not None:
            return f"{noun} of at least {low} characters"
        return f"{noun} of at most {high} characters" if high is not None else noun
    if kind == "array":
        low, high = schema.get("minItems"), schema.get("maxItems")
        if low is not None and high is not None:
            return f"an array of {low} to {high} items"
        if low is not None:
            return f"an array of at least {low} items"
        return f"an array of at most {high} items" if high is not None else "an array"
    return {"object": "an object", "boolean": "true or false"}.get(str(kind), "any value")


def show(value: Any, limit: int = 60) -> str:
    """A short repr for messages: long strings are cut and their length is given."""
    text = shortened(repr(value), limit)
    if isinstance(value, str) and len(value) > 20:
        text += f" ({len(value)} characters)"
    return text


Checker = Callable[[Any, Location], Any]
_CHECKERS: dict[int, tuple[Schema, Fits, Checker]] = {}


def conform(schema: Schema, value: Any, location: Location = ()) -> Any:
    """Return value if it conforms to the compiled schema; raise SchemaViolation if not.

    Whole floats become ints where an integer is expected (JSON does not tell 46.0 from 46);
    then, and only then, the containers around them are copied, never changed in place.

    Each schema is turned once, on first use, into two checks: a straight-line function that
    says whether the value conforms as it stands (_fits), and a tree of small checking
    functions that decides the rest, makes the conformed copy and says what is wrong.
    """
    entry = _CHECKERS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_CHECKERS) > 256:  # only ever a handful of spec schemas; bound stray ones
            _CHECKERS.clear()
        entry = _CHECKERS[id(schema)] = (schema, compile_fits(schema), _checker(schema))
    # Almost every value conforms as it stands: one straight-line function says so (_fits);
    # the tree of checks decides the rest, and says why.
    if entry[1](value):
        return value
    return entry[2](value, location)


def _fail(schema: Schema, value: Any, location: Location) -> NoReturn:
    raise SchemaViolation.refused(schema, value, location)


def _checker(schema: Schema) -> Checker:
    kind = schema.get("type")
    check_type = _BY_TYPE[kind](schema) if kind is not None else _anything
    if "oneOf" in schema or "anyOf" in schema:
        check_type = _union(schema, check_type)
    if "enum" not in schema:
        return check_type
    allowed = schema["enum"]

    def check(value: Any, location: Location) -> Any:
        value = check_type(value, location)
        if value not in allowed:
            _fail(schema, value, location)
        return value

    return check


def _anything(value: Any, location: Location) -> Any:
    return value


def _union(schema: Schema, check_type: Checker) -> Checker:
    """oneOf: exactly one branch conforms; anyOf: at least one. The value becomes what its
    (first) conforming branch made of it."""
    exclusive = "oneOf" in schema
    schemas = schema["oneOf" if exclusive else "anyOf"]
    branches = [(_checker(branch), _TAKES.get(branch.get("type"))) for branch in schemas]

    def check(value: Any, location: Location) -> Any:
        value = check_type(value, location)
        kind = type(value)
        conformed = []
        for branch, takes in branches:
            # A branch whose type cannot take this JSON value is not tried: it would only
            # raise, and raising costs more than the rest of a valid answer's checks.
            if takes is not None and kind in _JSON_TYPES and kind not in takes:
                continue
            try:
                conformed.append(branch(value, location))
            except SchemaViolation:
                continue
            if not exclusive:
                break
        if len(conformed) != 1:
            _fail(schema, value, location)
        return conformed[0]

    return check


# The Python types of JSON values, and those each schema type can take (a whole float is an
# integer; a bool is never a number). Any other type (a str subclass, say) tries every branch.
_JSON_TYPES: Final = frozenset({dict, list, str, int, float, bool, type(None)})
_TAKES: Final[dict[Any, frozenset[type]]] = {
    "integer": frozenset({int, float}),
    "number": frozenset({int, float}),
    "string": frozenset({str}),
    "boolean": frozenset({bool}),
    "array": frozenset({list}),
    "object": frozenset({dict}),
}


def _integer(schema: Schema) -> Checker:
    low, high = schema.get("minimum"), schema.get("maximum")

    def check(value: Any, location: Location) -> Any:
        if type(value) is not int:  # bool is an int subclass but never a valid integer here
            if not (isinstance(value, float) and value.is_integer()):
                _fail(schema, value, location)
            value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            _fail(schema, value, location)
        return value

    return check


def _number(schema: Schema) -> Checker:
    low, high = schema.get("minimum"), schema.get("maximum")

    def check(value: Any, location: Location) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            _fail(schema, value, location)
        if (low is not None and value < low) or (high is not None and value > high):
            _fail(schema, value, location)
        return value

    return check


def _string(schema: Schema) -> Checker:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    uri = schema.get("format") == "uri"
    # ECMA-262's meaning, not Python's (`$` at the very end only, `\d` ASCII only): translated
    # once, here; unanchored, as JSON Schema's patterns are.
    pattern = ecma_pattern(schema["pattern"]) if "pattern" in schema else None

    def check(value: Any, location: Location) -> Any:
        if not isinstance(value, str) or len(value) < low:
            _fail(schema, value, location)
        _check_unicode(schema, value, location)
        if high is not None and len(value) > high:
            _fail(schema, value, location)
        if uri and not is_uri(value):
            _fail(schema, value, location)
        if pattern is not None and pattern.search(value) is None:
            _fail(schema, value, location)
        return value

    return check


def _check_unicode(schema: Schema, value: str, location: Location) -> None:
    if value.isascii():  # known without a scan; most strings are
        return
    found = _LONE_SURROGATE.search(value)
    if found is not None:
        problem = (
            f"{show(value)} holds U+{ord(found.group()):04X} at character {found.start() + 1}, "
            "a lone surrogate: not Unicode text, so it cannot be sent as UTF-8"
        )
        raise SchemaViolation(location, value, problem, describe(schema))


def _boolean(schema: Schema) -> Checker:
    def check(value: Any, location: Location) -> Any:
        if not isinstance(value, bool):
            _fail(schema, value, location)
        return value

    return check


def _array(schema: Schema) -> Checker:
    items = _checker(schema["items"]) if "items" in schema else None
    low, high = schema.get("minItems", 0), schema.get("maxItems")

    def check(value: Any, location: Location) -> Any:
        if not isinstance(value, list) or len(value) < low:
            _fail(schema, value, location)
        if high is not None and len(value) > high:
            _fail(schema, value, location)
        if items is None:
            return value
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(items(item, ()))
            except SchemaViolation as violation:
                raise violation.within(*location, index) from None
        return value if all(map(operator.is_, checked, value)) else checked

    return check


def _object(schema: Schema) -> Checker:
    properties = {name: _checker(sub) for name, sub in schema.get("properties", {}).items()}
    extra = schema.get("additionalProperties", True)
    check_extra = _checker(extra) if isinstance(extra, dict) else None
    required = frozenset(schema.get("required", ()))
    known = ", ".join(properties)

    def check(value: Any, location: Location) -> Any:
        if not isinstance(value, dict):
            _fail(schema, value, location)
        keys = value.keys()
        if extra is False and not keys <= properties.keys():
            key = next(key for key in value if key not in properties)
            problem = f"unknown field; known fields: {known}"
            raise SchemaViolation((*location, key), value[key], problem, known)
        if not keys >= required:
            name = next(name for name in schema["required"] if name not in value)
            expected = describe(schema.get("properties", {}).get(name, {}))
            problem = f"missing; required: {expected}"
            raise SchemaViolation((*location, name), None, problem, expected)
        # A copy only when a value changed (a whole float made an int): every request and
        # response passes through here, and most need no change at all.
        result = None
        for key, item in value.items():
            sub = properties.get(key, check_extra)
            if sub is None:
                continue
            try:
                checked = sub(item, ())
            except SchemaViolation as violation:
                raise violation.within(*location, key) from None
            if checked is not item:
                if result is None:
                    result = dict(value)
                result[key] = checked
        return value if result is None else result

    return check


_BY_TYPE: Final[dict[str, Callable[[Schema], Checker]]] = {
    "integer": _integer,
    "number": _number,
    "string": _string,
    "boolean": _boolean,
    "array": _array,
    "object": _object,
}
