"""The validator reads the spec as JSON Schema means it: on values drawn for every schema of the
spec, its verdict is the verdict of an independent validator.

The judge is jsonschema-rs (Rust, its own regex engine with ECMA-262's meaning and its own
RFC 3986 check of `format: uri`), reading the spec's own schemas, `$ref`s and all, with formats
checked. Not the Python jsonschema: its `pattern` is Python's `re.search`, the very reading at
fault here, and its FormatChecker checks `uri` only when rfc3987 or rfc3986-validator happens
to be installed. Draft 7's meaning of `integer` (a whole float is one) is the validator's,
which reads JSON as JSON does not tell 46.0 from 46.

Values are drawn to conform and then knocked one step aside where Python and ECMA-262 part
(a trailing newline, a digit or space outside ASCII, a character RFC 3986 does not allow), and
every case issue 20 names is an explicit example.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from novita_flux import _schema
from novita_flux._fits import compile_fits, source_of
from novita_flux._jsonstrings import ECMA_SPACES, UntranslatablePattern, ecma_pattern, is_uri
from novita_flux._schema import SchemaViolation, compile_schema, conform
from novita_flux._spec import Schema, document
from scripts.spec_diff.values import from_compiled

SPEC = document()
COMPONENTS = SPEC["components"]


def _nodes(name: str, node: Any) -> Iterator[tuple[str, Schema]]:
    """A schema and every schema inside it, each named by where it is."""
    if not isinstance(node, dict):
        return
    yield name, node
    for key, sub in node.get("properties", {}).items():
        yield from _nodes(f"{name}.{key}", sub)
    for key in ("items", "additionalProperties"):
        yield from _nodes(f"{name}.{key}", node.get(key))
    for key in ("oneOf", "anyOf", "allOf"):
        for index, branch in enumerate(node.get(key, ())):
            yield from _nodes(f"{name}.{key}[{index}]", branch)


SCHEMAS: dict[str, Schema] = {
    where: node
    for name, schema in COMPONENTS["schemas"].items()
    for where, node in _nodes(name, schema)
    if set(node) - {"description"} != {"$ref"}  # a bare $ref is the schema it names, listed
}
COMPILED = {where: compile_schema(node) for where, node in SCHEMAS.items()}
JUDGES = {
    where: jsonschema_rs.Draft7Validator(node | {"components": COMPONENTS}, validate_formats=True)
    for where, node in SCHEMAS.items()
}

# Where Python's reading and JSON Schema's part: appended, prepended or swapped in.
_ASIDE = ["\n", "\r", "\r\n", "\u2028", "\u0085", "\x1c", " ", "\u00a0", "\ufeff", "\t"]
_ASIDE += ["\u0663", "\uff13", "\U0001d7d9", "\u00e9", "\u00b2"]  # digits, a letter, a ² ...
_ASIDE += ["%", "%zz", "|", "[", "]", "{", "\\", "#", "?", "@", ":", "//", "\x7f", "例"]


@st.composite
def knocked_aside(draw: st.DrawFn, value: Any) -> Any:
    """`value` with one string inside it (anywhere) changed where the two readings part."""
    strings = list(_string_paths(value))
    if not strings:
        return value
    path = draw(st.sampled_from(strings))
    text = _at(value, path)
    odd = draw(st.sampled_from(_ASIDE))
    where = draw(st.integers(0, len(text)))
    how = draw(st.sampled_from(["insert", "replace", "append", "prepend", "digits"]))
    if how == "insert":
        changed = text[:where] + odd + text[where:]
    elif how == "replace":
        changed = text[:where] + odd + text[where + 1 :]
    elif how == "append":
        changed = text + odd
    elif how == "prepend":
        changed = odd + text
    else:  # every ASCII digit as the same digit of another script
        script = draw(st.sampled_from([0x0660, 0xFF10, 0x1D7CE, 0x0966]))
        changed = "".join(chr(script + int(c)) if c.isascii() and c.isdigit() else c for c in text)
    return _replaced(value, path, changed)


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_paths(item, (*path, index))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = list(value) if isinstance(value, list) else dict(value)
    copy[head] = _replaced(value[head], tuple(rest), new)
    return copy


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
ANY_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, Any]:
    """(a schema of the spec, a value near it): conforming, knocked aside, or any JSON."""
    where = draw(st.sampled_from(sorted(SCHEMAS)))
    kind = draw(st.sampled_from(["conforming", "aside", "aside", "any"]))
    if kind == "any":
        return where, draw(ANY_JSON)
    value = draw(from_compiled(COMPILED[where]))
    return where, (draw(knocked_aside(value)) if kind == "aside" else value)


def verdicts(where: str, value: Any) -> tuple[bool, bool]:
    """(ours, the judge's): whether each accepts `value` for the schema at `where`."""
    try:
        conform(COMPILED[where], value)
        ours = True
    except SchemaViolation:
        ours = False
    return ours, JUDGES[where].is_valid(value)


# Every case issue 20 names, and their neighbours: each tried on every run.
NAMED_CASES = [
    ("ResponseImageType", "png\n"),
    ("ResponseImageType", "png"),
    ("ResponseImageType", "\npng"),
    ("ResponseImageType", "JPG\r\n"),
    ("Image.image_url_ttl", "3600\n"),
    ("Image.image_url_ttl", "\u0663\u0666\u0660\u0660"),  # Arabic-Indic digits
    ("Image.image_url_ttl", "\uff13\uff16\uff10\uff10"),  # full-width digits
    ("Image.image_url_ttl", "3600"),
    ("Image.image_url", "http://a b/x.png"),
    ("Image.image_url", "https://例え.jp/x.png"),
    ("Image.image_url", "https://a.example/x.png?sig=%zz"),
    ("Image.image_url", "https://a.example/x|y.png"),
    ("Image.image_url", "mailto:someone@example.com"),
    ("Image.image_url", "https://a..b/x.png"),
    ("Image.image_url", "https://xn--a/x.png"),
    ("Image.image_url", f"https://{'a' * 64}.example/x.png"),
    ("Image.image_url", "https://[::1]:8080/x.png"),
    ("Image.image_url", "https://[::1%25eth0]/x.png"),
    ("Image.image_url", "https://user:pw@a.example:99999/x.png"),
    ("Image.image_url", "https://a.example/x.png\n"),
]


@given(case=cases())
@example(case=("Image", {"image_url": "https://a/x", "image_url_ttl": 1, "image_type": "png\n"}))
@example(case=("Flux1SchnellResponse", {"images": [], "task": {"task_id": "t"}}))
def test_the_validator_s_verdict_is_json_schema_s_on_every_schema_of_the_spec(
    case: tuple[str, Any],
) -> None:
    where, value = case
    ours, judge = verdicts(where, value)
    assert ours == judge, f"{where}: {json.dumps(value)} ours={ours} jsonschema-rs={judge}"


@pytest.mark.parametrize(("where", "value"), NAMED_CASES)
def test_each_case_the_issue_names_gets_json_schema_s_verdict(where: str, value: Any) -> None:
    ours, judge = verdicts(where, value)
    assert ours == judge, f"{where}: {value!r} ours={ours} jsonschema-rs={judge}"


def test_every_schema_of_the_spec_is_compared() -> None:
    # The walk finds what the spec has: a new component or field is compared without anyone
    # listing it here.
    assert set(COMPONENTS["schemas"]) <= {where.split(".")[0] for where in SCHEMAS}
    assert {"ResponseImageType", "Image.image_url", "Image.image_url_ttl.oneOf[1]"} <= set(SCHEMAS)


# --- the pattern translation itself --------------------------------------------------------------


def test_ecma_s_white_space_is_its_list_and_unicode_s_space_separators() -> None:
    separators = {chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Zs"}
    assert set(ECMA_SPACES) == separators | set("\t\n\v\f\r\u2028\u2029\ufeff")


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("^png$", "png\n", False),
        ("^\\d+$", "\u0663", False),
        ("^\\w+$", "\u00e9", False),
        ("^\\s$", "\u00a0", True),
        ("^\\s$", "\ufeff", True),
        ("^\\s$", "\x1c", False),
        ("^\\s$", "\x85", False),
        ("^a.b$", "a\rb", False),
        ("^a.b$", "a\u2028b", False),
        ("^a.b$", "a\u0085b", True),
        ("^[^]$", "\n", True),
        ("^[]", "", False),
        ("^[\\d-]+$", "1-2", True),
        ("^\\x41\\u00e9\\cJ$", "A\u00e9\n", True),
        ("^(?<word>a)b$", "ab", True),
        ("a{2}", "aa", True),
        ("^[\\b]$", "\b", True),
        ("^\\/$", "/", True),
        ("^[a&&b]$", "&", True),
    ],
)
def test_a_pattern_means_what_ecma_262_says(pattern: str, text: str, matches: bool) -> None:
    assert (ecma_pattern(pattern).search(text) is not None) is matches
    if pattern not in _BEYOND_THE_JUDGE:
        assert jsonschema_rs.is_valid({"pattern": pattern}, text) is matches


# Where jsonschema-rs is no judge: ECMA-262 stops `.` at every line terminator (LF, CR, U+2028,
# U+2029), Rust's regex under jsonschema-rs at LF alone; and it refuses as "not a regex" the
# empty class, the class of anything, a class ending in "-" and a backspace in a class, all
# ECMA-262's own syntax.
_BEYOND_THE_JUDGE = frozenset({"^a.b$", "^[^]$", "^[]", "^[\\d-]+$", "^[\\b]$"})


@pytest.mark.parametrize(
    "pattern",
    ["a{,3}", "a*+", "\\Z", "\\A", "(?i)a", "(?P<n>a)", "\\1", "\\p{L}", "\\u{41}", "[\\S]",
     "a{", "}", "[a", "\\", "*a", "[--a]", "[a-\\d]", "(?<=a+)b", "[z-a]"],
)  # fmt: skip
def test_a_pattern_it_cannot_read_as_ecma_262_makes_compiling_fail(pattern: str) -> None:
    with pytest.raises(UntranslatablePattern, match="cannot read as ECMA-262"):
        compile_schema({"type": "string", "pattern": pattern})


URI_JUDGE = jsonschema_rs.Draft7Validator({"format": "uri"}, validate_formats=True)


@given(text=st.text() | st.from_regex(r"[a-zA-Z][a-z+.-]*:[!-~]*", fullmatch=True))
@example(text="http://[v1.x]/")
@example(text="http://[V1.x]/")
@example(text="a:")
@example(text="http://a@b@c/")
@example(text="http://u:p@h:8/x@y?z@w#@")
@example(text="http://h/x?y#z@")
def test_is_uri_agrees_with_jsonschema_rs_on_any_text(text: str) -> None:
    assert is_uri(text) is URI_JUDGE.is_valid(text)


# --- the fast half of conform (_fits) -----------------------------------------------------------

# Both halves are made inside each test, never once at import: mutmut learns which tests reach a
# function by tracing them, and a checker made at collection is made by none (and unmutated).


def _holds_a_float(value: Any) -> bool:
    if isinstance(value, dict):
        return any(map(_holds_a_float, value.values()))
    if isinstance(value, list):
        return any(map(_holds_a_float, value))
    return isinstance(value, float)


@given(case=cases())
@example(case=("Flux1SchnellRequest.width", 512.0))  # conforms, but changes: an int
@example(case=("Flux1SchnellRequest.width", True))
@example(case=("Flux1SchnellRequest.prompt", "un renard \u00e9l\u00e9gant"))
@example(case=("Flux1SchnellRequest.prompt", "a \ud800 fox"))  # a lone surrogate
@example(case=("Image.image_url_ttl", 3600.0))
@example(case=("Image.image_url_ttl", "3600"))
@example(case=("Image.image_url_ttl", -1))
@example(case=("Image", {"image_url": "https://a/x", "image_url_ttl": 1.0, "image_type": "png"}))
def test_the_fast_check_says_yes_exactly_when_the_tree_hands_the_value_back_unchanged(
    case: tuple[str, Any],
) -> None:
    where, value = case
    try:
        conformed = _schema._checker(COMPILED[where])(value, ())
    except SchemaViolation:
        conformed = SchemaViolation
    fits = compile_fits(COMPILED[where])(value)
    # Never a wrong yes: what it lets through, the tree would have handed back as it is.
    assert not fits or conformed is value, f"{where}: {value!r} fits, the tree says {conformed!r}"
    # And no needless no on the spec's schemas: a value with no float to make an int conforms
    # as it stands, and so is never left to the slower tree (that costs time, not correctness).
    if conformed is value and not _holds_a_float(value):
        assert fits, f"{where}: {value!r} conforms unchanged, but fits says no"


def test_the_fast_check_writes_a_property_name_as_a_literal_never_as_code() -> None:
    name = "x'] or True or [\"']"
    source, _ = source_of(compile_schema({"type": "object", "properties": {name: {}}}))
    assert repr(name) in source  # a literal, however it is spelled
    fits = compile_fits(
        compile_schema({"type": "object", "properties": {name: {"type": "integer"}}})
    )
    assert fits({name: 1})
    assert not fits({name: "1"})


def _nested(depth: int) -> Schema:
    schema: Schema = {"type": "array"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


@pytest.mark.parametrize(
    ("schema", "value", "fits"),
    [
        ({"type": "array", "items": {}}, [1, "a"], True),  # a loop that checks nothing
        ({"type": "object", "additionalProperties": {}}, {"a": 1}, True),
        ({"type": "object", "additionalProperties": {"description": "any"}}, {"a": 1}, True),
        ({"type": "integer", "maximum": float("inf")}, 5, True),  # no literal for inf
        ({"type": "number", "minimum": float("nan")}, 5, False),  # the tree decides
        (_nested(25), [[[]]], False),  # deeper than Python compiles: always the tree
    ],
)
def test_a_schema_the_fast_check_cannot_write_plainly_still_conforms_as_the_tree_says(
    schema: Schema, value: Any, fits: bool
) -> None:
    assert compile_fits(schema)(value) is fits
    assert conform(schema, value) is value


def test_a_type_neither_half_knows_still_fails_as_the_tree_fails() -> None:
    for kind in ("widget", "_init__", 3):
        assert compile_fits({"type": kind})(1) is False
        with pytest.raises(KeyError):
            conform({"type": kind}, 1)


# Each half at the bounds of each kind of check, on schemas of every type the validator takes
# (the spec itself has no `number`, and no array without minItems).
BOUNDS: list[tuple[Schema, list[Any], list[Any]]] = [
    ({"type": "number", "minimum": 1.5, "maximum": 2.5}, [1.5, 2.5, 2, 2.0], [1.4, 2.6, True]),
    ({"type": "number"}, [0.0, -1, 10**30], [float("nan"), "1", None]),
    ({"type": "integer", "minimum": 1, "maximum": 3}, [1, 3], [0, 4, True, "2"]),
    ({"type": "string", "minLength": 1, "maxLength": 3}, ["a", "abc", "é"], ["", "abcd", 1]),
    ({"type": "string", "pattern": "^a+$"}, ["aa"], ["b", "aa\n"]),
    ({"type": "string", "format": "uri"}, ["https://a.example/x"], ["not a uri"]),
    ({"type": "string", "enum": ["png", "jpeg"]}, ["png"], ["PNG", "gif"]),
    ({"type": "boolean"}, [True, False], [1, 0, None]),
    ({"type": "array", "minItems": 1, "maxItems": 2}, [[1], [1, 2]], [[], [1, 2, 3], (1,)]),
    ({"type": "array"}, [[]], [{}]),  # no minItems: an empty array conforms
    ({"type": "array", "items": {"type": "integer"}}, [[1, 2], []], [["1"], [1, "2"]]),
    (
        {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
        [{"a": 1}, {"a": 1, "b": "x"}],
        [{}, {"a": "1"}, []],
    ),
    (
        {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
        [{"a": 1}, {}],
        [{"b": 1}],
    ),
    (
        {"type": "object", "additionalProperties": {"type": "integer"}},
        [{"a": 1}, {}],
        [{"a": "1"}],
    ),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, [1, "1"], [None, 1.5, [1]]),
    ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, [], [1]),  # both: not exactly one
    ({"anyOf": [{"type": "integer"}, {"type": "number"}]}, [1], ["1"]),  # at least one
    ({"enum": [1, "a"]}, [1, "a"], [2, "b"]),
]


@pytest.mark.parametrize(("schema", "inside", "outside"), BOUNDS)
def test_both_halves_agree_at_every_bound_of_every_kind_of_check(
    schema: Schema, inside: list[Any], outside: list[Any]
) -> None:
    tree, fits = _schema._checker(schema), compile_fits(schema)
    for value in inside:
        assert tree(value, ()) is value, value  # handed back as it is, no copy
        assert fits(value) is True, value
    for value in outside:
        with pytest.raises(SchemaViolation):
            tree(value, ())
        assert fits(value) is False, value
