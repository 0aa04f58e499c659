"""The classified report: every change, each breaking one with the value that proves it.

`compare` reads two contracts (parsed documents), lists their changes (`changes`), asks the
hypothesis check (`evidence`) for a proof of each break and for any break the reading missed,
and returns a Report that says how large a release the difference needs and prints itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Final

from scripts.spec_diff.changes import UNSAFE, Change, Document, Kind, Side, changes, sides
from scripts.spec_diff.evidence import EXAMPLES, located, search
from scripts.spec_diff.schemas import ITEM, Where

# The bodies always searched, so that a break the reading missed is still found: every request,
# and every operation's answer (its 200).
ALWAYS_SEARCHED_STATUS: Final = 200


class Level(IntEnum):
    """How large a release a difference needs, smallest first."""

    NONE = 0
    DOCUMENTATION = 1
    COMPATIBLE = 2
    BREAKING = 3


@dataclass(frozen=True)
class Proof:
    value: Any
    refusal: str  # what the refusing validator says about it


@dataclass(frozen=True)
class Finding:
    change: Change
    proof: Proof | None = None
    note: str = ""


@dataclass(frozen=True)
class Report:
    old_name: str  # "released 0.1.0"
    new_name: str  # "working 0.2.0"
    findings: tuple[Finding, ...]
    searches: tuple[str, ...]  # what the hypothesis check drew and found, one line each

    def of(self, kind: Kind) -> list[Finding]:
        return [finding for finding in self.findings if finding.change.kind is kind]

    @property
    def level(self) -> Level:
        kinds = {finding.change.kind for finding in self.findings}
        if kinds & UNSAFE:
            return Level.BREAKING
        if Kind.COMPATIBLE in kinds:
            return Level.COMPATIBLE
        return Level.DOCUMENTATION if kinds else Level.NONE

    def first_proof(self) -> Finding | None:
        return next((finding for finding in self.findings if finding.proof is not None), None)

    def render(self) -> str:
        lines = [f"spec-diff: {self.new_name} against {self.old_name}", ""]
        for kind in Kind:
            found = self.of(kind)
            if kind is Kind.NOT_UNDERSTOOD and not found:
                continue
            lines.append(f"{kind.value}:{'' if found else ' none'}")
            for finding in found:
                lines += ["  " + line for line in self.explain(finding)]
        lines += ["", "hypothesis check:", *(f"  {line}" for line in self.searches)]
        return "\n".join(lines)

    def explain(self, finding: Finding) -> list[str]:
        change = finding.change
        where = f" {show_where(change.where)}" if change.where else ""
        lines = [f"- {change.part}{where}: {change.what}"]
        if finding.proof is not None:
            accepts, refuses = self._judges(change)
            lines.append(f"  proof: {accepts} accepts it, {refuses} refuses it")
            lines.append(f"    ({finding.proof.refusal}):")
            lines.append(f"    {show_value(finding.proof.value)}")
        if finding.note:
            lines.append(f"  ({finding.note})")
        return lines

    def _judges(self, change: Change) -> tuple[str, str]:
        if change.kind is Kind.BREAKING_FOR_CALLERS:
            return f"the {self.old_name} contract", f"the {self.new_name} one"
        return f"the {self.new_name} contract", f"the {self.old_name} client"


def compare(
    old: Document, new: Document, old_name: str, new_name: str, examples: int = EXAMPLES
) -> Report:
    by_part = {side.part: side for side in sides(old, new)}
    findings = [
        _prove(change, by_part.get(change.side or ""), examples) for change in changes(old, new)
    ]
    searches = []
    for side in by_part.values():
        if side.is_request or side.status == ALWAYS_SEARCHED_STATUS:
            found, line = _unexplained(side, findings, old_name, new_name, examples)
            findings += found
            searches.append(line)
    return Report(old_name, new_name, tuple(findings), tuple(searches))


def _judged(side: Side) -> tuple[Any, Any]:
    """(accepting, refusing): requests come from the old contract, responses from the new."""
    return (side.old, side.new) if side.is_request else (side.new, side.old)


def _prove(change: Change, side: Side | None, examples: int) -> Finding:
    if side is None or not change.effect & side.breaking_effect:
        return Finding(change)
    accepting, refusing = _judged(side)
    found = search(
        accepting, refusing, lambda violation: located(violation, change.where), examples
    )
    if found is not None:
        return Finding(change, Proof(found[0], str(found[1])))
    if not change.certain:
        note = f"no value in {examples} tries is accepted by one contract and refused by the other"
        return Finding(replace(change, kind=Kind.COMPATIBLE), note=note)
    return Finding(change, note=f"no counterexample drawn in {examples} tries")


def _unexplained(
    side: Side, findings: list[Finding], old_name: str, new_name: str, examples: int
) -> tuple[list[Finding], str]:
    """A break on this side that no listed change accounts for: the reading missed it."""
    known = [
        f.change.where
        for f in findings
        if f.change.side == side.part and f.change.kind is side.breaking_kind
    ]
    accepting, refusing = _judged(side)
    found = search(
        accepting,
        refusing,
        lambda violation: not any(located(violation, where) for where in known),
        examples,
    )
    bodies = "requests" if side.is_request else f"{side.part} bodies"
    source, judge = (old_name, new_name) if side.is_request else (new_name, old_name)
    drawn = f"{bodies}: {examples} drawn from {source}, put to {judge}'s validator"
    if found is None:
        return [], f"{drawn}: none refused{' but as proven above' if known else ''}"
    value, violation = found
    where: Where = tuple(ITEM if isinstance(p, int) else p for p in violation.location)
    what = f"found by the hypothesis check only: {violation}"
    change = Change(side.breaking_kind, side.part, where, what, side.part, side.breaking_effect)
    proof = Proof(value, str(violation))
    return [Finding(change, proof)], f"{drawn}: one refused that no listed change explains"


def show_where(where: Where) -> str:
    text = ""
    for part in where:
        text += part if part == ITEM or not text else f".{part}"
    return text


def show_value(value: Any) -> str:
    """JSON, with long strings cut (their length said) so that a proof fits on a line."""
    return json.dumps(_cut(value), ensure_ascii=False)


def _cut(value: Any, limit: int = 40) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {key: _cut(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item) for item in value]
    return value
