"""How two compiled schemas differ, as the values each accepts.

Every difference is a Delta: where it is in the body, what it is, and its Effect: whether the
new schema refuses something the old one accepted (NARROWS), accepts something the old one
refused (WIDENS), or changes what an absent value means (DEFAULT). Which of those breaks anyone
depends on the side of the contract, and is decided in `changes`. The schemas are the ones
`novita_flux._schema.compile_schema` makes (the validator's own), so only keywords it checks
can appear; a keyword it does not know fails compilation before anything here runs.

A change this cannot decide by reading (a regular expression or a format that changed) is a
Delta with `certain=False`: the hypothesis check in `evidence` decides it by trying values.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Flag, auto
from typing import Any, Final

from novita_flux._schema import describe
from novita_flux._spec import Schema

Where = tuple[str, ...]  # field names, "[]" for any item of an array, "*" for any other field
ITEM: Final = "[]"
OTHER: Final = "*"
_UNIONS: Final = ("oneOf", "anyOf")
_NOT_CONSTRAINTS: Final = frozenset({"description", "default"})


class Effect(Flag):
    NONE = 0
    NARROWS = auto()  # refuses something the old schema accepted
    WIDENS = auto()  # accepts something the old schema refused
    DEFAULT = auto()  # what an absent value means changed


@dataclass(frozen=True)
class Delta:
    where: Where
    what: str
    effect: Effect
    certain: bool = True


def schema_changes(old: Schema, new: Schema, where: Where = ()) -> Iterator[Delta]:
    """Every difference between two compiled schemas, outermost first."""
    if "default" in old or "default" in new:
        before, after = old.get("default"), new.get("default")
        if before != after:
            what = f"default {before!r} -> {after!r}: a body without it now means {after!r}"
            yield Delta(where, what, Effect.DEFAULT)
    old_union, new_union = (any(key in schema for key in _UNIONS) for schema in (old, new))
    yield from _alternatives(_branches(old), _branches(new), where)
    if old_union and new_union:  # what sits beside both unions applies to every branch
        outside_old, outside_new = _outside_union(old), _outside_union(new)
        if constraints(outside_old) or constraints(outside_new):
            yield from _alternatives([outside_old], [outside_new], where)


def constraints(schema: Schema) -> Schema:
    """What a schema checks, without the words around it (so two schemas that differ only in
    their descriptions compare equal)."""
    kept: Schema = {}
    for key, value in schema.items():
        if key in _NOT_CONSTRAINTS:
            continue
        if key == "properties":
            value = {name: constraints(sub) for name, sub in value.items()}
        elif key in _UNIONS:
            value = [constraints(branch) for branch in value]
        elif isinstance(value, dict):
            value = constraints(value)
        kept[key] = value
    return kept


def _branches(schema: Schema) -> list[Schema]:
    for key in _UNIONS:
        if key in schema:
            branches: list[Schema] = schema[key]
            return branches
    return [schema]


def _outside_union(schema: Schema) -> Schema:
    return {key: value for key, value in schema.items() if key not in _UNIONS}


def _slot(schema: Schema) -> str | None:
    """Branches are paired by the JSON type they accept; integer and number share a slot."""
    kind = schema.get("type")
    return "number" if kind == "integer" else kind


def _alternatives(old: list[Schema], new: list[Schema], where: Where) -> Iterator[Delta]:
    old_slots = {_slot(branch): branch for branch in old}
    new_slots = {_slot(branch): branch for branch in new}
    paired = len(old_slots) == len(old) and len(new_slots) == len(new)
    if not paired or (None in old_slots) != (None in new_slots):
        yield from _unpaired(old, new, where)
        return
    for slot in [*old_slots, *(slot for slot in new_slots if slot not in old_slots)]:
        before, after = old_slots.get(slot), new_slots.get(slot)
        if after is None:
            yield Delta(where, f"{describe(before or {})} is no longer accepted", Effect.NARROWS)
        elif before is None:
            yield Delta(where, f"{describe(after)} is accepted too", Effect.WIDENS)
        else:
            yield from _same_slot(before, after, where)


def _unpaired(old: list[Schema], new: list[Schema], where: Where) -> Iterator[Delta]:
    """Two branches of one type, or a typed schema against an untyped one."""
    if [constraints(b) for b in old] == [constraints(b) for b in new]:
        return
    if any(not constraints(branch) for branch in new):
        yield Delta(where, f"any value is accepted (was {_describe(old)})", Effect.WIDENS)
    elif any(not constraints(branch) for branch in old):
        yield Delta(where, f"must now be {_describe(new)} (was any value)", Effect.NARROWS)
    else:
        what = f"{_describe(old)} -> {_describe(new)}"
        yield Delta(where, what, Effect.NARROWS | Effect.WIDENS, certain=False)


def _describe(branches: list[Schema]) -> str:
    return " or ".join(describe(branch) for branch in branches)


def _same_slot(old: Schema, new: Schema, where: Where) -> Iterator[Delta]:
    before, after = old.get("type"), new.get("type")
    if before != after:  # integer <-> number: every integer is a number
        effect = Effect.WIDENS if after == "number" else Effect.NARROWS
        yield Delta(where, f"type {before} -> {after}", effect)
    yield from _bounds(old, new, where, "minimum", "maximum")
    yield from _bounds(old, new, where, "minLength", "maxLength")
    yield from _bounds(old, new, where, "minItems", "maxItems")
    yield from _choices(old, new, where)
    for key in ("pattern", "format"):
        yield from _undecided(old, new, where, key)
    if "properties" in old or "properties" in new or after == "object":
        yield from _object(old, new, where)
    if "items" in old or "items" in new:
        yield from schema_changes(old.get("items", {}), new.get("items", {}), (*where, ITEM))


def _bounds(old: Schema, new: Schema, where: Where, low: str, high: str) -> Iterator[Delta]:
    tighter: dict[str, Callable[[Any, Any], bool]] = {low: operator.gt, high: operator.lt}
    for key, is_tighter in tighter.items():
        before, after = old.get(key), new.get(key)
        if key in ("minLength", "minItems"):  # the validator's default: no minimum is 0
            before, after = before or 0, after or 0
        if before == after:
            continue
        if after is None:
            effect = Effect.WIDENS
        elif before is None:
            effect = Effect.NARROWS
        else:
            effect = Effect.NARROWS if is_tighter(after, before) else Effect.WIDENS
        yield Delta(where, f"{key} {_bound(before)} -> {_bound(after)}", effect)


def _bound(value: Any) -> str:
    return "none" if value is None else repr(value)


def _choices(old: Schema, new: Schema, where: Where) -> Iterator[Delta]:
    before: list[Any] | None = old.get("enum")
    after: list[Any] | None = new.get("enum")
    if before == after:
        return
    if after is None:
        listed = ", ".join(map(repr, before or ()))
        yield Delta(where, f"no longer limited to {listed}", Effect.WIDENS)
    elif before is None:
        yield Delta(where, f"now limited to {', '.join(map(repr, after))}", Effect.NARROWS)
    else:
        for value in before:
            if value not in after:
                yield Delta(where, f"{value!r} is no longer one of the choices", Effect.NARROWS)
        for value in after:
            if value not in before:
                yield Delta(where, f"{value!r} is a new choice", Effect.WIDENS)


def _undecided(old: Schema, new: Schema, where: Where, key: str) -> Iterator[Delta]:
    before, after = old.get(key), new.get(key)
    if before == after:
        return
    effect = Effect.NONE
    if after is not None:
        effect |= Effect.NARROWS
    if before is not None:
        effect |= Effect.WIDENS
    yield Delta(where, f"{key} {_bound(before)} -> {_bound(after)}", effect, certain=False)


def _object(old: Schema, new: Schema, where: Where) -> Iterator[Delta]:
    before: dict[str, Schema] = old.get("properties", {})
    after: dict[str, Schema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    old_extra, new_extra = (
        old.get("additionalProperties", True),
        new.get("additionalProperties", True),
    )
    removed = [name for name in before if name not in after]
    added = [name for name in after if name not in before]
    renamed = _renames(removed, added, before, after)
    for name, sub in before.items():
        if name in after:
            yield from schema_changes(sub, after[name], (*where, name))
    for old_name, new_name in renamed.items():
        required = " (required)" if old_name in old_required else ""
        what = f"renamed to {new_name!r}{required}, the same schema"
        yield Delta((*where, old_name), what, Effect.NARROWS | Effect.WIDENS)
    for name in removed:
        if name not in renamed:
            yield from _removed(before[name], new_extra, (*where, name), name in old_required)
    for name in added:
        if name not in renamed.values():
            yield from _added(after[name], old_extra, (*where, name), name in new_required)
    handled = {*removed, *added}
    for name in sorted(new_required - old_required - handled):
        yield Delta((*where, name), "is now required", Effect.NARROWS)
    for name in sorted(old_required - new_required - handled):
        yield Delta((*where, name), "is no longer required", Effect.WIDENS)
    yield from _other_fields(old_extra, new_extra, (*where, OTHER))


def _renames(
    removed: list[str], added: list[str], before: dict[str, Schema], after: dict[str, Schema]
) -> dict[str, str]:
    """Old name -> new name, for a removed field and an added one with the same schema (and
    only when that pairing is the one possible)."""
    pairs = [
        (old, new)
        for old in removed
        for new in added
        if constraints(before[old]) == constraints(after[new])
    ]
    olds, news = [old for old, _ in pairs], [new for _, new in pairs]
    return {old: new for old, new in pairs if olds.count(old) == 1 and news.count(new) == 1}


def _removed(schema: Schema, new_extra: Any, where: Where, required: bool) -> Iterator[Delta]:
    was = " (it was required)" if required else ""
    if new_extra is False:
        effect = Effect.NARROWS | (Effect.WIDENS if required else Effect.NONE)
        yield Delta(where, f"removed: a body that has it is refused{was}", effect)
    elif isinstance(new_extra, dict):
        yield from schema_changes(schema, new_extra, where)
        if required:
            yield Delta(where, "is no longer required", Effect.WIDENS)
    elif constraints(schema) or required:
        yield Delta(
            where, f"no longer described: any value, or none, is accepted{was}", Effect.WIDENS
        )


def _added(schema: Schema, old_extra: Any, where: Where, required: bool) -> Iterator[Delta]:
    if required:
        what = f"new required field: {describe(schema)}"
        yield Delta(
            where, what, Effect.NARROWS | (Effect.WIDENS if old_extra is False else Effect.NONE)
        )
    elif old_extra is False:
        yield Delta(where, f"new optional field: {describe(schema)}", Effect.WIDENS)
    elif isinstance(old_extra, dict):
        yield from schema_changes(old_extra, schema, where)
    elif constraints(schema):
        yield Delta(where, f"newly described: must be {describe(schema)}", Effect.NARROWS)


def _other_fields(old: Any, new: Any, where: Where) -> Iterator[Delta]:
    """additionalProperties: False (refused), True (anything) or a schema."""
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        yield from schema_changes(old, new, where)
    elif new is False:
        yield Delta(where, "fields it does not name are now refused", Effect.NARROWS)
    elif old is False:
        yield Delta(where, "fields it does not name are now accepted", Effect.WIDENS)
    elif new is True:
        yield Delta(where, "fields it does not name may now be anything", Effect.WIDENS)
    else:
        yield Delta(where, f"fields it does not name must now be {describe(new)}", Effect.NARROWS)
