"""A compiled schema turned into one straight-line Python function that answers a single question:
does this value conform to the schema as it stands, so that `_schema.conform` would hand it back
unchanged?

Every request and every answer passes through `conform`, and almost all of them conform with
nothing to change. `_schema`'s tree of small checking functions answers that in a dozen calls
with a location each; the function made here answers it in one call, with no location, no
message and no copy (issue 22). It is only ever the fast half of `conform`: when it says False
(a value to refuse, a whole float to make an int, or anything it is not sure of), `conform` asks
the tree, which decides and says why. So it may say False too often, never True wrongly:
tests/client/test_schema_properties.py holds it to the tree on every schema of the spec.

The source is generated from the compiled schema and run through `exec`, as fastjsonschema
does: constants (key sets, enums, patterns) are passed in by name, and property names appear
only as `repr()` literals, so nothing in the spec is ever read as code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from novita_flux._jsonstrings import LONE_SURROGATE, ecma_pattern, is_uri
from novita_flux._spec import Schema

Fits = Callable[[Any], bool]

# The scalar JSON types no check changes: `conform` changes only a whole float (into an int), and
# containers holding one. A union over any other value is settled by its branches' own answers.
_UNCHANGED_SCALARS = (str, int, bool, type(None))


def compile_fits(schema: Schema) -> Fits:
    """The function answering "conforms, and unchanged?" for a schema `compile_schema` made.

    A schema it cannot write as straight-line code (a type the tree does not know either, nesting
    deeper than Python's compiler takes) gets a function that always says no: the tree then
    decides every value, as it did before there was a fast half."""
    try:
        source, constants = source_of(schema)
        code = compile(source, "<novita_flux._fits>", "exec")
    except (_Unwritable, SyntaxError, RecursionError, MemoryError):
        return _never
    namespace: dict[str, Any] = dict(constants)
    exec(code, namespace)  # noqa: S102
    fits: Fits = namespace["fits"]
    return fits


def _never(value: Any) -> bool:
    return False


class _Unwritable(Exception):
    """A schema the writer has no straight-line code for."""


def source_of(schema: Schema) -> tuple[str, dict[str, Any]]:
    """The function's source, and the constants it names."""
    writer = _Writer()
    writer.line(1, "v0 = value")
    writer.node(schema, "v0", 1)
    writer.line(1, "return True")
    return "def fits(value):\n" + "\n".join(writer.lines) + "\n", writer.constants


class _Writer:
    """The lines of the function, and the constants they name."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "is_uri": is_uri,
            "LONE_SURROGATE": LONE_SURROGATE,
            "_UNCHANGED_SCALARS": _UNCHANGED_SCALARS,
        }
        self._names = 0

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def fail_unless(self, depth: int, condition: str) -> None:
        self.line(depth, f"if not ({condition}):")
        self.line(depth + 1, "return False")

    def constant(self, value: Any) -> str:
        self._names += 1
        name = f"c{self._names}"
        self.constants[name] = value
        return name

    def variable(self) -> str:
        self._names += 1
        return f"v{self._names}"

    def node(self, schema: Schema, value: str, depth: int) -> None:
        """The lines that return False unless `value` (a local name) fits `schema`."""
        kind = schema.get("type")
        if kind is not None:
            write = _BY_TYPE.get(kind) if isinstance(kind, str) else None
            if write is None:
                raise _Unwritable(kind)
            write(self, schema, value, depth)
        branches = schema.get("oneOf", schema.get("anyOf"))
        if branches is not None:
            self._union(branches, "oneOf" in schema, value, depth)
        if "enum" in schema:
            self.fail_unless(depth, f"{value} in {self.constant(schema['enum'])}")

    def block(self, depth: int, opening: str, body: Callable[[], None]) -> None:
        """`opening` (a `for` or an `if`) and the lines `body` writes under it, or `pass` when it
        writes none (an `items: {}` checks nothing)."""
        self.line(depth, opening)
        written = len(self.lines)
        body()
        if len(self.lines) == written:
            self.line(depth + 1, "pass")

    def literal(self, bound: Any) -> str:
        """A bound as source: an int or a finite float as itself, anything else by name (`inf`
        and `nan` have no literal)."""
        if type(bound) is int or (type(bound) is float and math.isfinite(bound)):
            return repr(bound)
        return self.constant(bound)

    def _bounds(self, schema: Schema, measure: str, low: str, high: str, depth: int) -> None:
        if schema.get(low) is not None:
            self.fail_unless(depth, f"{measure} >= {self.literal(schema[low])}")
        if schema.get(high) is not None:
            self.fail_unless(depth, f"{measure} <= {self.literal(schema[high])}")

    def _integer(self, schema: Schema, value: str, depth: int) -> None:
        # Not a whole float (conform makes it an int: a change), never a bool.
        self.fail_unless(depth, f"type({value}) is int")
        self._bounds(schema, value, "minimum", "maximum", depth)

    def _number(self, schema: Schema, value: str, depth: int) -> None:
        self.fail_unless(depth, f"(type({value}) is int or type({value}) is float)")
        self.fail_unless(depth, f"{value} == {value}")  # not NaN
        self._bounds(schema, value, "minimum", "maximum", depth)

    def _boolean(self, schema: Schema, value: str, depth: int) -> None:
        self.fail_unless(depth, f"type({value}) is bool")

    def _string(self, schema: Schema, value: str, depth: int) -> None:
        self.fail_unless(depth, f"type({value}) is str")
        # Unicode text: no lone surrogate (known without a scan when it is all ASCII).
        self.fail_unless(depth, f"{value}.isascii() or LONE_SURROGATE.search({value}) is None")
        self._bounds(schema, f"len({value})", "minLength", "maxLength", depth)
        if schema.get("format") == "uri":
            self.fail_unless(depth, f"is_uri({value})")
        if "pattern" in schema:
            pattern = self.constant(ecma_pattern(schema["pattern"]))
            self.fail_unless(depth, f"{pattern}.search({value}) is not None")

    def _array(self, schema: Schema, value: str, depth: int) -> None:
        self.fail_unless(depth, f"type({value}) is list")
        self._bounds(schema, f"len({value})", "minItems", "maxItems", depth)
        if "items" in schema:
            item = self.variable()
            self.block(
                depth,
                f"for {item} in {value}:",
                lambda: self.node(schema["items"], item, depth + 1),
            )

    def _object(self, schema: Schema, value: str, depth: int) -> None:
        self.fail_unless(depth, f"type({value}) is dict")
        properties: dict[str, Schema] = schema.get("properties", {})
        if schema.get("required"):
            required = self.constant(frozenset(schema["required"]))
            self.fail_unless(depth, f"{value}.keys() >= {required}")
        extra = schema.get("additionalProperties", True)
        if extra is False:
            self.fail_unless(depth, f"{value}.keys() <= {self.constant(frozenset(properties))}")
        elif isinstance(extra, dict):
            known = self.constant(frozenset(properties))
            name, item = self.variable(), self.variable()
            self.line(depth, f"for {name}, {item} in {value}.items():")
            self.block(
                depth + 1, f"if {name} not in {known}:", lambda: self.node(extra, item, depth + 2)
            )
        for name, sub in properties.items():
            item = self.variable()
            self.line(depth, f"if {name!r} in {value}:")
            self.line(depth + 1, f"{item} = {value}[{name!r}]")
            self.node(sub, item, depth + 1)

    def _union(self, branches: list[Schema], exclusive: bool, value: str, depth: int) -> None:
        """A value no branch can change fits the union when it fits exactly one branch (oneOf)
        or any (anyOf); any other value is left to the tree."""
        self.fail_unless(depth, f"type({value}) in _UNCHANGED_SCALARS")
        count = self.variable()
        self.line(depth, f"{count} = 0")
        for branch in branches:  # each a function of its own: its checks return from it
            self.line(depth, f"{count} += {self.constant(compile_fits(branch))}({value})")
        self.fail_unless(depth, f"{count} == 1" if exclusive else f"{count} >= 1")


_BY_TYPE: dict[str, Callable[[_Writer, Schema, str, int], None]] = {
    "integer": _Writer._integer,
    "number": _Writer._number,
    "boolean": _Writer._boolean,
    "string": _Writer._string,
    "array": _Writer._array,
    "object": _Writer._object,
}
