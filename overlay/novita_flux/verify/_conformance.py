"""A JSON value against a schema of the spec: every difference, each at its JSON path, and every
variant that the spec tolerates but does not prefer.

The client's validator stops at the first problem, which is right for a call; a verification
wants all of them. Tolerance is read from the spec itself, never decided here:

- `oneOf`: the first branch is the form the spec prefers (for `image_url_ttl`, the integer the
  docs page shows); a value that matches a later branch is tolerated.
- `additionalProperties: true`: a field the spec does not name is tolerated (and kept by the
  client); with `false` it is a deviation.
- `x-normalise`: a spelling the rule reads as a canonical value (`JPG` as `jpeg`) is tolerated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from novita_flux._schema import SchemaViolation, compile_schema, conform, describe, show
from novita_flux._spec import Schema, canonical_image_type, resolve
from novita_flux.verify._report import Finding


def differences(schema: Schema, value: Any, path: str = "$") -> list[Finding]:
    """Every deviation and tolerated variant of `value` from `schema` (a schema of the spec,
    `$ref`s and all)."""
    return list(_walk(schema, value, path))


def _walk(schema: Schema, value: Any, path: str) -> Iterator[Finding]:
    node = _merged(schema)
    if "oneOf" in node:
        yield from _one_of(node, value, path)
        return
    kind = node.get("type")
    if kind == "object" and isinstance(value, dict):
        yield from _object(node, value, path)
    elif kind == "array" and isinstance(value, list):
        low, high = node.get("minItems", 0), node.get("maxItems")
        if len(value) < low or (high is not None and len(value) > high):
            yield Finding("deviates", path, describe(_compiled(node)), f"{len(value)} item(s)")
        for index, item in enumerate(value):
            if "items" in node:
                yield from _walk(node["items"], item, f"{path}[{index}]")
    else:
        yield from _leaf(node, value, path)


def _object(node: Schema, value: dict[str, Any], path: str) -> Iterator[Finding]:
    if "properties" not in node and "required" not in node:
        return  # a free-form object (an error's metadata): whatever it holds, it conforms
    properties: dict[str, Schema] = node.get("properties", {})
    for name in node.get("required", ()):
        if name not in value:
            expected = describe(_compiled(properties.get(name, {})))
            yield Finding("deviates", f"{path}.{name}", f"a required field: {expected}", "missing")
    extra = node.get("additionalProperties", True)
    for key, item in value.items():
        where = f"{path}.{key}"
        if key in properties:
            yield from _walk(properties[key], item, where)
        elif extra is False:
            known = ", ".join(properties)
            yield Finding("deviates", where, f"only the fields {known}", f"{show(item)}")
        elif isinstance(extra, dict):
            yield from _walk(extra, item, where)
        else:
            yield Finding(
                "tolerated",
                where,
                "the fields it names, and allows others (additionalProperties)",
                f"a field it does not name: {show(item)}",
            )


def _one_of(node: Schema, value: Any, path: str) -> Iterator[Finding]:
    branches = node["oneOf"]
    matching = [index for index, branch in enumerate(branches) if _conforms(branch, value)]
    if len(matching) != 1:
        yield Finding("deviates", path, describe(_compiled(node)), show(value))
        return
    (index,) = matching
    if index > 0:
        preferred = describe(_compiled(branches[0]))
        allowed = describe(_compiled(branches[index]))
        yield Finding("tolerated", path, preferred, f"{show(value)}, {allowed}, which it allows")
    yield from _walk(branches[index], value, path)


def _leaf(node: Schema, value: Any, path: str) -> Iterator[Finding]:
    try:
        conform(_compiled(node), value)
    except SchemaViolation as violation:
        yield Finding("deviates", path, violation.expected, show(value))
        return
    if "x-normalise" in node and isinstance(value, str):
        canonical = canonical_image_type(value)
        if canonical != value:
            yield Finding(
                "tolerated", path, repr(canonical), f"{value!r}, which it reads as {canonical!r}"
            )


def _conforms(schema: Schema, value: Any) -> bool:
    try:
        conform(_compiled(schema), value)
    except SchemaViolation:
        return False
    return True


def _merged(schema: Schema) -> Schema:
    """The schema with `$ref` followed and `allOf` merged, its `x-` rules kept."""
    node = resolve(schema)
    merged: Schema = {}
    for part in node.get("allOf", ()):
        merged.update(_merged(part))
    merged.update({key: value for key, value in node.items() if key != "allOf"})
    return merged


def _compiled(schema: Schema) -> Schema:
    # Compiled on each use: a few small schemas per answer, and nothing to keep in step.
    return compile_schema(schema)
