"""Values that conform to a compiled schema, drawn by hypothesis.

The spec differ draws requests from a released contract and 200 bodies from the working one
here, and the test suite draws its bodies from the same function. Bounds and lengths are drawn
at their edges as often as anywhere between: a range narrowed by one must be found, not hoped for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from hypothesis.provisional import urls
from hypothesis_jsonschema import from_schema

from novita_flux._spec import Schema


def presigned_links() -> st.SearchStrategy[str]:
    """Absolute http(s) URLs, some with a signature in the query like Novita's links."""
    signature = st.text("0123456789abcdef", min_size=1, max_size=64)
    return urls() | st.tuples(urls(), signature).map(
        lambda parts: f"{parts[0].partition('#')[0]}?X-Amz-Signature={parts[1]}"
    )


def plain_links() -> st.SearchStrategy[str]:
    """Absolute http(s) URLs of a simple shape: ten times cheaper to draw than `urls()`."""
    word = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)
    path = st.text("abcdefghijklmnopqrstuvwxyz0123456789/._-", max_size=20)
    scheme = st.sampled_from(["http", "https"])
    return st.builds(lambda s, host, p: f"{s}://{host}.com/{p}", scheme, word, path)


def _small_json() -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=4,
    )


@dataclass(frozen=True)
class Drawing:
    """How lavishly values are drawn: the test suite's bodies exercise a client (odd links,
    long lists, any JSON in unnamed fields); the spec differ needs many small values fast."""

    links: st.SearchStrategy[str]
    max_items: int | None  # items in an array
    unnamed: st.SearchStrategy[Any]  # values of fields a schema does not name


THOROUGH = Drawing(presigned_links(), None, from_schema({}))
QUICK = Drawing(plain_links(), 3, _small_json())


def from_compiled(schema: Schema, drawing: Drawing = THOROUGH) -> st.SearchStrategy[Any]:
    """Values that conform to a compiled schema. Objects and arrays are walked here and leaves
    drawn by hypothesis-jsonschema's from_schema: its own object strategy calls a Hypothesis
    internal (`many.more()`) that Hypothesis 6.170 no longer has. A `format: uri` is drawn as
    an absolute http(s) link, which is what the API sends and what `uri` means."""
    if schema.get("type") == "object":
        return _objects(schema, drawing)
    if schema.get("type") == "array":
        items = from_compiled(schema.get("items", {}), drawing)
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        cap = drawing.max_items  # drawn short, but within the bounds
        if cap is None or (high is not None and high < cap):
            cap = high
        cap = None if cap is None else max(low, cap)
        lists = st.lists(items, min_size=low, max_size=cap)
        if high is not None and (cap is None or high > cap):
            # The longest, however long: one item drawn and repeated, as cheap as a short list.
            lists |= items.map(lambda item: [item] * high)
        return lists
    branches = schema.get("oneOf", schema.get("anyOf"))
    if branches is not None:
        return st.one_of([from_compiled(branch, drawing) for branch in branches])
    if schema.get("format") == "uri":
        return drawing.links
    return _edges(schema) | from_schema(schema)


def _objects(schema: Schema, drawing: Drawing) -> st.SearchStrategy[dict[str, Any]]:
    properties: dict[str, Schema] = schema.get("properties", {})
    required = schema.get("required", ())
    named = st.fixed_dictionaries(
        {name: from_compiled(properties[name], drawing) for name in required},
        optional={
            name: from_compiled(sub, drawing)
            for name, sub in properties.items()
            if name not in required
        },
    )
    extra = schema.get("additionalProperties", True)
    if extra is False:
        return named
    others = st.dictionaries(
        st.text().filter(lambda key: key not in properties),
        from_compiled(extra, drawing) if isinstance(extra, dict) else drawing.unnamed,
        max_size=3,
    )
    return st.builds(lambda more, known: more | known, others, named)


def _edges(schema: Schema) -> st.SearchStrategy[Any]:
    """A leaf's bounds themselves (a number at its minimum or maximum, a string of exactly its
    shortest or longest length), or nothing when it has none or they do not apply alone."""
    if "enum" in schema or "pattern" in schema or "format" in schema:
        return st.nothing()
    kind = schema.get("type")
    if kind in ("integer", "number"):
        bounds = [schema[key] for key in ("minimum", "maximum") if key in schema]
        return st.sampled_from(bounds) if bounds else st.nothing()
    if kind == "string":
        lengths = [schema.get("minLength", 0)] + [schema[k] for k in ("maxLength",) if k in schema]
        return st.one_of([st.text(min_size=n, max_size=n) for n in lengths])
    return st.nothing()
