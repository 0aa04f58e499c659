"""What changed between two contracts, classified from the client's side.

Operations are matched by their operationId (one whose id changed but whose method and path did
not is the same operation, renamed). Each operation both contracts have is compared body by body,
as the validator compiles them (`schemas`): a request that accepts less breaks callers, a response
that allows more breaks old clients. A new operation is a compatible addition (the released client
never calls it); one that is gone breaks callers. The rest of the document is compared leaf by
leaf, so that nothing is left out: words (documentation only), `x-` extensions (the client follows
them: compatible), the endpoint, the server, authentication and the names the generator turns into
Python (breaking for callers), and anything else, which this differ does not claim to understand
and counts as breaking.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final, NamedTuple

from novita_flux._schema import compile_schema
from novita_flux._spec import Operation, Schema, operations_in, resolve
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
    status: int | None = None  # of a response
    operation: str = ""  # its operationId (in the new contract)

    @property
    def breaking_effect(self) -> Effect:
        return Effect.NARROWS if self.is_request else Effect.WIDENS

    @property
    def breaking_kind(self) -> Kind:
        return Kind.BREAKING_FOR_CALLERS if self.is_request else Kind.BREAKING_FOR_OLD_CLIENTS


class Pair(NamedTuple):
    """One operation as each contract has it (None where it has not)."""

    old: Operation | None
    new: Operation | None

    @property
    def name(self) -> str:
        either = self.new if self.new is not None else self.old
        assert either is not None  # a pair has at least one side
        return either.id


def pairs(old: Document, new: Document) -> list[Pair]:
    """The operations of both contracts, matched by operationId, then a renamed one by its method
    and path; in the new contract's order, those it lost last."""
    before, after = operations_in(old), operations_in(new)
    unmatched = {(o.method, o.path): o for key, o in before.items() if key not in after}
    found = []
    for key, operation in after.items():
        match = before.get(key) or unmatched.pop((operation.method, operation.path), None)
        found.append(Pair(match, operation))
    matched = {pair.old.id for pair in found if pair.old is not None}
    found += [Pair(operation, None) for key, operation in before.items() if key not in matched]
    return found


def _both(old: Document, new: Document) -> list[tuple[Operation, Operation]]:
    return [(p.old, p.new) for p in pairs(old, new) if p.old is not None and p.new is not None]


def _part(body: str, operation: Operation, named: bool) -> str:
    """`request`, `200 response`; with the operation's id when there is more than one to tell
    apart (`balanceDetail 200 response`)."""
    return f"{operation.id} {body}" if named else body


def sides(old: Document, new: Document) -> list[Side]:
    """The request and every response status both contracts document with a JSON body, for
    every operation both have."""
    both = _both(old, new)
    named = len(both) > 1
    found = []
    for before, after in both:
        if "requestBody" in before.body and "requestBody" in after.body:
            found.append(
                Side(
                    _part("request", after, named),
                    True,
                    compile_schema(_request_schema(old, before), old),
                    compile_schema(_request_schema(new, after), new),
                    None,
                    after.id,
                )
            )
        statuses = _statuses(before).keys() & _statuses(after).keys()
        for status in sorted(statuses, key=int):
            old_schema, new_schema = (
                _json_schema(old, before, status),
                _json_schema(new, after, status),
            )
            if old_schema is not None and new_schema is not None:
                part = _part(f"{status} response", after, named)
                found.append(
                    Side(
                        part,
                        False,
                        compile_schema(old_schema, old),
                        compile_schema(new_schema, new),
                        int(status),
                        after.id,
                    )
                )
    return found


def changes(old: Document, new: Document) -> list[Change]:
    found = list(_endpoints(old, new))
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


def _statuses(operation: Operation) -> dict[str, Any]:
    responses: dict[str, Any] = operation.body["responses"]
    return responses


def _request_schema(spec: Document, operation: Operation) -> Schema:
    return resolve(operation.body["requestBody"]["content"]["application/json"]["schema"], spec)


def _json_schema(spec: Document, operation: Operation, status: str) -> Schema | None:
    response = resolve(_statuses(operation)[status], spec)
    if "application/json" not in response.get("content", {}):
        return None
    return resolve(response["content"]["application/json"]["schema"], spec)


def _endpoints(old: Document, new: Document) -> Iterator[Change]:
    for pair in pairs(old, new):
        before, after = pair
        if after is None:
            assert before is not None
            what = (
                f"operation {before.id} ({before.method} {before.path}) removed: the released "
                "client calls an endpoint this contract does not have"
            )
            yield Change(Kind.BREAKING_FOR_CALLERS, "endpoint", (), what)
        elif before is None:
            what = (
                f"new operation {after.id}: {after.method} {after.path} (the released client does "
                "not call it, and nothing it sends or reads changes)"
            )
            yield Change(Kind.COMPATIBLE, "endpoint", (), what)
        elif (before.method, before.path) != (after.method, after.path):
            what = (
                f"{before.method} {before.path} -> {after.method} {after.path}: the released client"
                " calls an endpoint this contract does not have"
            )
            yield Change(Kind.BREAKING_FOR_CALLERS, "endpoint", (), what)


def _statuses_changes(old: Document, new: Document) -> Iterator[Change]:
    both = _both(old, new)
    for old_operation, new_operation in both:
        before, after = _statuses(old_operation), _statuses(new_operation)
        for status in sorted(after.keys() - before.keys()):
            part = _part(f"{status} response", new_operation, len(both) > 1)
            if int(status) < 400:
                what = f"new status {status}: the released client reads only the statuses it knows"
                yield Change(Kind.BREAKING_FOR_OLD_CLIENTS, part, (), what)
            else:
                what = (
                    f"newly documented status {status} (the released client raises it as an error)"
                )
                yield Change(Kind.COMPATIBLE, part, (), what)
        for status in sorted(before.keys() - after.keys()):
            part = _part(f"{status} response", new_operation, len(both) > 1)
            yield Change(Kind.COMPATIBLE, part, (), "no longer documented")


def _merge_error_responses(found: list[Change], all_sides: list[Side]) -> list[Change]:
    """The error statuses share one envelope: a change to it is listed once for each operation,
    with its statuses."""
    errors = {
        side.part: side.operation
        for side in all_sides
        if side.status is not None and side.status >= 400
    }
    statuses = {side.part: side.status for side in all_sides}
    merged: dict[tuple[str, Kind, Where, str], list[Change]] = {}
    kept: list[Change] = []
    for change in found:
        if change.side in errors:
            key = (errors[change.side], change.kind, change.where, change.what)
            if key not in merged:
                merged[key] = []
                kept.append(change)
            merged[key].append(change)
        else:
            kept.append(change)
    for group in merged.values():
        if len(group) > 1:
            codes = ", ".join(str(statuses[change.side or ""]) for change in group)
            first = group[0].part
            part = first[: first.index(str(statuses[group[0].side or ""]))] + f"responses {codes}"
            kept[kept.index(group[0])] = replace(group[0], part=part)
    return kept


# --- the rest of the document, leaf by leaf ------------------------------------------------------

_WORDS: Final = frozenset(
    {"description", "summary", "title", "example", "examples", "externalDocs", "contact"}
    | {"license", "termsOfService"}
)
# Keys under which the next key is a name chosen by the author, not an OpenAPI keyword.
_NAMED: Final = frozenset(
    {"properties", "schemas", "responses", "content", "headers", "operations"}
)
_MISSING: Final = object()
Path = tuple[str, ...]


def _document_changes(old: Document, new: Document) -> Iterator[Change]:
    used = _used_schemas(old) | _used_schemas(new)
    matched = pairs(old, new)
    old_view = _view(old, {p.old.id: p.name for p in matched if p.old is not None})
    new_view = _view(new, {p.new.id: p.name for p in matched if p.new is not None})
    for path, before, after in _leaves(old_view, new_view, ()):
        change = _explain(path, before, after, used)
        if change is not None:
            yield change


def _view(spec: Document, names: dict[str, str]) -> dict[str, Any]:
    """The document with its operations lifted out of `paths` into `operations`, each under its
    name in the comparison (a renamed one under one name in both), so that a moved path does
    not read as every leaf changing: methods and paths are compared by `_endpoints`."""
    view = {key: value for key, value in spec.items() if key != "paths"}
    view["operations"] = {names[key]: op.body for key, op in operations_in(spec).items()}
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
    # Under `operations`: (operations, name, keyword, ...).
    in_operation = path[2:] if path[0] == "operations" else None
    if in_operation == ():
        return None  # an operation added or removed: said by _endpoints
    if (
        in_operation
        and in_operation[0] == "responses"
        and (len(in_operation) == 2 or path[-1] == "$ref")
    ):
        return None  # statuses, and the response each names: compared above
    if in_operation and in_operation[0] == "requestBody" and path[-1] == "required":
        return Change(Kind.COMPATIBLE, "spec", (), f"{shown} (the client always sends one)")
    if (
        path[0] in ("servers", "security")
        or (in_operation and in_operation[0] == "security")
        or path[:2] == ("components", "securitySchemes")
    ):
        what = f"{shown}: the released client calls the old server or authenticates the old way"
        return Change(Kind.BREAKING_FOR_CALLERS, "spec", (), what)
    if in_operation and in_operation[0] in ("operationId", "tags"):
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
    what = f"{'.'.join(path)} changed; {name} is not used by any operation, only its model changes"
    return Change(Kind.COMPATIBLE, "spec", (), what)


def _used_schemas(spec: Document) -> set[str]:
    """Names of the component schemas the operations reach, through any number of $refs."""
    used: set[str] = set()
    pending: list[Any] = [operation.body for operation in operations_in(spec).values()]
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
