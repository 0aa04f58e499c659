"""What changed between two contracts, classified from the client's side.

The request and each response are compared as the validator compiles them (`schemas`): a
request that accepts less breaks callers, a response that allows more breaks old clients. The
rest of the document is compared leaf by leaf, so that nothing is left out: words
(documentation only), `x-` extensions (the client follows them: compatible), the endpoint, the
server, authentication and the names the generator turns into Python (breaking for callers),
and anything else, which this differ does not claim to understand and counts as breaking.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final, NamedTuple

from novita_flux._schema import compile_schema
from novita_flux._spec import Schema, operation_in, request_schema_in, resolve, response_schema_in
from scripts.spec_diff.schemas import Delta, Effect, Where, schema_changes

Document = Mapping[str, Any]


class Kind(Enum):
    BREAKING_FOR_CALLERS = (
        "Breaking for callers (a request the released client sends is now refused)"
    )
    BREAKING_FOR_OLD_CLIENTS = (
        "Breaking for old clients (a response now allowed is refused by the released client)"
    )
    NOT_UNDERSTOOD = "Not understood by spec-diff (counted as breaking)"
    COMPATIBLE = "Compatible additions and other compatible changes"
    DOCUMENTATION = "Documentation only"


# What needs a major release (the minor below 1.0).
UNSAFE: Final = frozenset(
    {Kind.BREAKING_FOR_CALLERS, Kind.BREAKING_FOR_OLD_CLIENTS, Kind.NOT_UNDERSTOOD}
)


@dataclass(frozen=True)
class Change:
    kind: Kind
    part: str  # where in the contract: "request", "200 response", "responses 400, 401", "spec"
    where: Where  # where in that body (empty for the whole body or for the document)
    what: str
    side: str | None = None  # the Side whose validators can prove it, if any
    effect: Effect = Effect.NONE  # on the values that side accepts
    certain: bool = True  # False: a value must show it (a pattern changed), see `evidence`


class Side(NamedTuple):
    """A body both contracts describe, compiled by the overlay's own compiler."""

    part: str
    # A request breaks callers when it narrows; a response breaks old clients when it widens.
    is_request: bool
    old: Schema
    new: Schema

    @property
    def breaking_effect(self) -> Effect:
        return Effect.NARROWS if self.is_request else Effect.WIDENS

    @property
    def breaking_kind(self) -> Kind:
        return Kind.BREAKING_FOR_CALLERS if self.is_request else Kind.BREAKING_FOR_OLD_CLIENTS


def sides(old: Document, new: Document) -> list[Side]:
    """The request and every response status both contracts document with a JSON body."""
    found = [
        Side(
            "request",
            True,
            compile_schema(request_schema_in(old), old),
            compile_schema(request_schema_in(new), new),
        )
    ]
    for status in sorted(_statuses(old).keys() & _statuses(new).keys(), key=int):
        before, after = _json_schema(old, status), _json_schema(new, status)
        if before is not None and after is not None:
            part = f"{status} response"
            found.append(Side(part, False, compile_schema(before, old), compile_schema(after, new)))
    return found


def changes(old: Document, new: Document) -> list[Change]:
    found = list(_endpoint(old, new))
    all_sides = sides(old, new)
    for side in all_sides:
        found += [_classify(side, delta) for delta in schema_changes(side.old, side.new)]
    found += _statuses_changes(old, new)
    found += _document_changes(old, new)
    return _merge_error_responses(found, all_sides)


def _classify(side: Side, delta: Delta) -> Change:
    if delta.effect & side.breaking_effect:
        kind = side.breaking_kind
    elif side.is_request and delta.effect & Effect.DEFAULT:
        kind = Kind.BREAKING_FOR_CALLERS  # a call that leaves it out now asks for something else
    elif delta.effect:
        kind = Kind.COMPATIBLE
    else:
        kind = Kind.DOCUMENTATION
    return Change(kind, side.part, delta.where, delta.what, side.part, delta.effect, delta.certain)


def _statuses(spec: Document) -> dict[str, Any]:
    responses: dict[str, Any] = operation_in(spec).body["responses"]
    return responses


def _json_schema(spec: Document, status: str) -> Schema | None:
    response = resolve(_statuses(spec)[status], spec)
    if "application/json" not in response.get("content", {}):
        return None
    return response_schema_in(spec, int(status))


def _endpoint(old: Document, new: Document) -> Iterator[Change]:
    before, after = operation_in(old), operation_in(new)
    if (before.method, before.path) != (after.method, after.path):
        what = (
            f"{before.method} {before.path} -> {after.method} {after.path}: the released client"
            " calls an endpoint this contract does not have"
        )
        yield Change(Kind.BREAKING_FOR_CALLERS, "endpoint", (), what)


def _statuses_changes(old: Document, new: Document) -> Iterator[Change]:
    before, after = _statuses(old), _statuses(new)
    for status in sorted(after.keys() - before.keys()):
        if int(status) < 400:
            what = f"new status {status}: the released client reads only the statuses it knows"
            yield Change(Kind.BREAKING_FOR_OLD_CLIENTS, f"{status} response", (), what)
        else:
            what = f"newly documented status {status} (the released client raises it as an error)"
            yield Change(Kind.COMPATIBLE, f"{status} response", (), what)
    for status in sorted(before.keys() - after.keys()):
        yield Change(Kind.COMPATIBLE, f"{status} response", (), "no longer documented")


def _merge_error_responses(found: list[Change], all_sides: list[Side]) -> list[Change]:
    """The error statuses share one envelope: a change to it is listed once, with its statuses."""
    errors = {side.part for side in all_sides if not side.is_request and int(side.part[:3]) >= 400}
    merged: dict[tuple[Kind, Where, str], list[Change]] = {}
    kept: list[Change] = []
    for change in found:
        if change.side in errors:
            key = (change.kind, change.where, change.what)
            if key not in merged:
                merged[key] = []
                kept.append(change)
            merged[key].append(change)
        else:
            kept.append(change)
    for group in merged.values():
        if len(group) > 1:
            part = "responses " + ", ".join(change.part[:3] for change in group)
            kept[kept.index(group[0])] = replace(group[0], part=part)
    return kept


# --- the rest of the document, leaf by leaf ------------------------------------------------------

_WORDS: Final = frozenset(
    {"description", "summary", "title", "example", "examples", "externalDocs", "contact"}
    | {"license", "termsOfService"}
)
# Keys under which the next key is a name chosen by the author, not an OpenAPI keyword.
_NAMED: Final = frozenset({"properties", "schemas", "responses", "content", "headers"})
_MISSING: Final = object()
Path = tuple[str, ...]


def _document_changes(old: Document, new: Document) -> Iterator[Change]:
    used = _used_schemas(old) | _used_schemas(new)
    for path, before, after in _leaves(_view(old), _view(new), ()):
        change = _explain(path, before, after, used)
        if change is not None:
            yield change


def _view(spec: Document) -> dict[str, Any]:
    """The document with its one operation lifted out of `paths` (its method and path are
    compared by `_endpoint`), so that a new path does not read as every leaf changing."""
    view = {key: value for key, value in spec.items() if key != "paths"}
    view["operation"] = operation_in(spec).body
    return view


def _leaves(old: Any, new: Any, path: Path) -> Iterator[tuple[Path, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(key for key in new if key not in old)]:
            yield from _leaves(old.get(key, _MISSING), new.get(key, _MISSING), (*path, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from _leaves(before, after, (*path, str(index)))
    elif old != new:
        yield path, old, new


def _keyword(path: Path, wanted: frozenset[str] | None = None) -> bool:
    """Whether path passes through one of the wanted keywords (or an `x-` one, if None)."""
    for index, key in enumerate(path):
        if index and path[index - 1] in _NAMED:
            continue  # a name, such as a property called "description"
        if key in wanted if wanted is not None else key.startswith("x-"):
            return True
    return False


def _explain(path: Path, before: Any, after: Any, used: set[str]) -> Change | None:
    place = ".".join(path)
    shown = f"{place}: {_short(before)} -> {_short(after)}"
    if path == ("info", "version"):
        return None  # the release's own number
    if _keyword(path, _WORDS):
        return Change(Kind.DOCUMENTATION, "spec", (), f"{place} {_verb(before, after)}")
    if _keyword(path):
        return Change(Kind.COMPATIBLE, "spec", (), f"{shown} (the client follows it)")
    if path[:2] == ("components", "schemas"):
        return _component(path, before, after, used)
    if "headers" in path:
        return Change(Kind.COMPATIBLE, "spec", (), f"{shown} (headers are not validated)")
    if "content" in path and "schema" in path:
        return None  # a request or response body: compared above, as the validator reads it
    if path[:2] == ("operation", "responses") and (len(path) == 3 or path[-1] == "$ref"):
        return None  # statuses, and the response each names: compared above
    if path[:2] == ("operation", "requestBody") and path[-1] == "required":
        return Change(Kind.COMPATIBLE, "spec", (), f"{shown} (the client always sends one)")
    if path[0] in ("servers", "security") or path[:2] in (
        ("operation", "security"),
        ("components", "securitySchemes"),
    ):
        what = f"{shown}: the released client calls the old server or authenticates the old way"
        return Change(Kind.BREAKING_FOR_CALLERS, "spec", (), what)
    if path[:2] in (("operation", "operationId"), ("operation", "tags")):
        what = f"{shown}: the generated function moves, code that imports it breaks"
        return Change(Kind.BREAKING_FOR_CALLERS, "spec", (), what)
    return Change(Kind.NOT_UNDERSTOOD, "spec", (), shown)


def _component(path: Path, before: Any, after: Any, used: set[str]) -> Change | None:
    name = path[2]
    if len(path) == 3 and after is _MISSING:
        what = (
            f"schema {name} removed: novita_flux_api.models loses its class, code using it breaks"
        )
        return Change(Kind.BREAKING_FOR_CALLERS, "spec", (), what)
    if len(path) == 3 and before is _MISSING:
        return Change(Kind.COMPATIBLE, "spec", (), f"new schema {name}")
    if name in used:
        return None  # compared above, as the request and the responses that use it
    what = f"{'.'.join(path)} changed; {name} is not used by the endpoint, only its model changes"
    return Change(Kind.COMPATIBLE, "spec", (), what)


def _used_schemas(spec: Document) -> set[str]:
    """Names of the component schemas the operation reaches, through any number of $refs."""
    used: set[str] = set()
    pending: list[Any] = [operation_in(spec).body]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref not in used:
                used.add(ref)
                pending.append(resolve({"$ref": ref}, spec))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    prefix = "#/components/schemas/"
    return {ref.removeprefix(prefix) for ref in used if ref.startswith(prefix)}


def _verb(before: Any, after: Any) -> str:
    return "added" if before is _MISSING else "removed" if after is _MISSING else "changed"


def _short(value: Any, limit: int = 50) -> str:
    text = "(absent)" if value is _MISSING else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
