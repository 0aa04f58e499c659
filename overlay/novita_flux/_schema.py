"""A small validator for the subset of JSON Schema the spec uses, with messages a person can act on.

It checks requests before they are sent (client), requests as they arrive (reference server) and
response bodies before they are parsed (client). A keyword it does not know makes compiling the
schema fail, so a spec that grows a new constraint can never be silently left unchecked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NoReturn
from urllib.parse import urlsplit

from novita_flux._spec import Schema, resolve

Location = tuple[str | int, ...]

_CHECKED: Final = frozenset(
    {"type", "properties", "required", "additionalProperties", "items"}
    | {"minimum", "maximum", "minLength", "maxLength", "enum", "format"}
)
_ANNOTATIONS: Final = frozenset({"description", "default", "example", "title", "allOf", "$ref"})


class SchemaViolation(Exception):
    """A value that does not conform to its schema, with where it is and what was expected."""

    def __init__(self, location: Location, value: Any, problem: str, expected: str) -> None:
        self.location = location
        self.value = value
        self.problem = problem
        self.expected = expected
        super().__init__(f"{self.field}: {problem}")

    @property
    def field(self) -> str:
        return ".".join(map(str, self.location)) or "body"


def compile_schema(schema: Schema) -> Schema:
    """Resolve `$ref`s and merge `allOf` into one plain tree, refusing unknown keywords."""
    merged: Schema = {}
    for part in resolve(schema).get("allOf", ()):
        merged.update(compile_schema(part))
    for key, value in resolve(schema).items():
        if key.startswith("x-") or key in _ANNOTATIONS:
            if key in ("description", "default"):
                merged[key] = value
            continue
        if key not in _CHECKED:
            raise NotImplementedError(f"the spec uses {key!r}, which novita_flux cannot check yet")
        if key == "properties":
            value = {name: compile_schema(sub) for name, sub in value.items()}
        elif key == "items" or (key == "additionalProperties" and isinstance(value, dict)):
            value = compile_schema(value)
        merged[key] = value
    return merged


def describe(schema: Schema) -> str:
    """What a conforming value looks like: 'an integer in [64, 2048]'."""
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
        if low is not None and high is not None:
            return f"{noun} of {low} to {high} characters"
        if low is not None:
            return f"{noun} of at least {low} characters"
        return f"{noun} of at most {high} characters" if high is not None else noun
    return {"object": "an object", "array": "an array", "boolean": "true or false"}.get(
        str(kind), "any value"
    )


def show(value: Any, limit: int = 60) -> str:
    """A short repr for messages: long strings are cut and their length is given."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if isinstance(value, str) and len(value) > 20:
        text += f" ({len(value)} characters)"
    return text


def conform(schema: Schema, value: Any, location: Location = ()) -> Any:
    """Return value if it conforms to the compiled schema (whole floats become ints where an
    integer is expected, as JSON does not tell 46.0 from 46); raise SchemaViolation if not."""
    kind = schema.get("type")
    if kind is not None:
        value = _BY_TYPE[kind](schema, value, location)
    if "enum" in schema and value not in schema["enum"]:
        _fail(schema, value, location)
    return value


def _fail(schema: Schema, value: Any, location: Location) -> NoReturn:
    expected = describe(schema)
    raise SchemaViolation(location, value, f"{show(value)} is not {expected}", expected)


def _integer(schema: Schema, value: Any, location: Location) -> Any:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if type(value) is not int:  # bool is an int subclass but never a valid integer here
        _fail(schema, value, location)
    return _in_range(schema, value, location)


def _number(schema: Schema, value: Any, location: Location) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        _fail(schema, value, location)
    return _in_range(schema, value, location)


def _in_range(schema: Schema, value: Any, location: Location) -> Any:
    low, high = schema.get("minimum"), schema.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(schema, value, location)
    return value


def _string(schema: Schema, value: Any, location: Location) -> Any:
    if not isinstance(value, str):
        _fail(schema, value, location)
    if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
        _fail(schema, value, location)
    if schema.get("format") == "uri":
        parts = urlsplit(value)
        if not (parts.scheme and parts.netloc):
            _fail(schema, value, location)
    return value


def _boolean(schema: Schema, value: Any, location: Location) -> Any:
    if not isinstance(value, bool):
        _fail(schema, value, location)
    return value


def _array(schema: Schema, value: Any, location: Location) -> Any:
    if not isinstance(value, list):
        _fail(schema, value, location)
    items = schema.get("items")
    if items is None:
        return value
    return [conform(items, item, (*location, index)) for index, item in enumerate(value)]


def _object(schema: Schema, value: Any, location: Location) -> Any:
    if not isinstance(value, dict):
        _fail(schema, value, location)
    properties: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key in value:
        if key not in properties and extra is False:
            known = ", ".join(properties)
            raise SchemaViolation(
                (*location, key), value[key], f"unknown field; known fields: {known}", known
            )
    for name in schema.get("required", ()):
        if name not in value:
            expected = describe(properties.get(name, {}))
            raise SchemaViolation(
                (*location, name), None, f"missing; required: {expected}", expected
            )
    result = {}
    for key, item in value.items():
        sub = properties.get(key, extra if isinstance(extra, dict) else None)
        result[key] = conform(sub, item, (*location, key)) if sub is not None else item
    return result


_BY_TYPE: Final[dict[str, Callable[[Schema, Any, Location], Any]]] = {
    "integer": _integer,
    "number": _number,
    "string": _string,
    "boolean": _boolean,
    "array": _array,
    "object": _object,
}
