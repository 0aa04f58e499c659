"""What a run found: per probe, the differences from the spec; then a one-line verdict.

A probe conforms (the answer is what the spec says), deviates (a difference: where, what the spec
says, what came back), is tolerated (a variant the spec allows but does not prefer: a TTL as a
string, a field it does not name, an image served as application/octet-stream), or answers one
of the open questions. Tolerated variants are listed once for the whole run, with how many probes
showed each; deviations are listed where they happened.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from typing import Any, Final, Literal

import attrs

from novita_flux._format import usd
from novita_flux.verify._probes import Plan, Probe, total

Kind = Literal["deviates", "tolerated", "answered"]
Verdict = Literal["conforms", "deviates", "tolerated", "answered", "unchecked"]
Status = Literal["held", "deviated", "unchecked"]

EXIT_STATUS: Final[dict[Status, int]] = {"held": 0, "deviated": 1, "unchecked": 2}


@attrs.frozen
class Finding:
    """One difference, tolerance or answer: where it is (a JSON path such as
    `$.images[0].image_url_ttl`, `status`, `header Content-Type`, `image 0: size`), what the spec
    says there, and what came back."""

    kind: Kind
    where: str
    spec: str
    got: str

    def line(self) -> str:
        if self.kind == "answered":
            return f"{self.where}: {self.got}"
        verb = "says" if self.kind == "deviates" else "prefers"
        return f"{self.where}: the spec {verb} {self.spec}; got {self.got}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "where": self.where, "spec": self.spec, "got": self.got}


@attrs.frozen
class ProbeResult:
    """How one probe went: its findings, a short account of the answers, and what it spent."""

    probe: Probe
    findings: tuple[Finding, ...] = ()
    summary: str = ""
    unchecked: str | None = None  # why the probe could not be checked
    spent: Decimal = Decimal(0)  # estimated: the answers that generated images

    @property
    def verdict(self) -> Verdict:
        kinds = {finding.kind for finding in self.findings}
        if "deviates" in kinds:
            return "deviates"
        if self.unchecked is not None:
            return "unchecked"
        if "answered" in kinds:  # a question's answer is the news, its variants are listed
            return "answered"
        if "tolerated" in kinds:
            return "tolerated"
        return "conforms"

    def of_kind(self, kind: Kind) -> list[Finding]:
        return [finding for finding in self.findings if finding.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.probe.id,
            "group": self.probe.group,
            "title": self.probe.title,
            "covers": list(self.probe.covers),
            "verdict": self.verdict,
            "summary": self.summary,
            "unchecked": self.unchecked,
            "price": usd(self.probe.cost),
            "spent": usd(self.spent),
            "findings": [finding.as_dict() for finding in self.findings],
        }


@attrs.frozen
class Report:
    """The whole run: against what, the plan, every probe's result, and the verdict."""

    base_url: str
    spec_version: str
    plan: Plan
    results: tuple[ProbeResult, ...]
    stopped: str | None = None  # why probes were left unsent, if they were

    @property
    def checked(self) -> list[ProbeResult]:
        return [result for result in self.results if result.verdict != "unchecked"]

    @property
    def deviating(self) -> list[ProbeResult]:
        return [result for result in self.results if result.verdict == "deviates"]

    @property
    def status(self) -> Status:
        if self.deviating:
            return "deviated"
        if not self.checked or len(self.checked) < len(self.results):
            return "unchecked"
        return "held"

    @property
    def held(self) -> bool:
        return self.status == "held"

    @property
    def exit_status(self) -> int:
        """0: the spec held; 1: the API deviated; 2: nothing (or not everything) was checked."""
        return EXIT_STATUS[self.status]

    @property
    def spent(self) -> Decimal:
        return total(result.spent for result in self.results)

    def tolerated(self) -> list[tuple[Finding, int]]:
        """Each tolerated variant once (indices as [*]), with how many probes showed it."""
        counts: Counter[tuple[str, str]] = Counter()
        example: dict[tuple[str, str], Finding] = {}
        for result in self.results:
            seen = set()
            for finding in result.of_kind("tolerated"):
                key = (_any_index(finding.where), finding.spec)
                if key not in seen:
                    seen.add(key)
                    counts[key] += 1
                    example.setdefault(key, attrs.evolve(finding, where=key[0]))
        return [(example[key], count) for key, count in counts.items()]

    def answers(self) -> list[tuple[ProbeResult, Finding]]:
        return [
            (result, finding) for result in self.results for finding in result.of_kind("answered")
        ]

    def verdict(self) -> str:
        """One line: whether the spec held, and the counts behind it."""
        total = len(self.results)
        answered = len({result.probe.id for result, _ in self.answers()})
        if self.status == "deviated":
            ids = ", ".join(result.probe.id for result in self.deviating)
            return (
                f"the API deviated from the spec in {len(self.deviating)} of {total} probes: {ids}"
            )
        if self.status == "unchecked":
            why = self.stopped or next(
                (r.unchecked for r in self.results if r.unchecked), "no probe was run"
            )
            if not self.checked:
                return f"nothing could be checked: {why}"
            return (
                f"the spec held for the {len(self.checked)} probes checked, but "
                f"{total - len(self.checked)} could not be checked: {why}"
            )
        with_tolerated = sum(1 for result in self.results if result.of_kind("tolerated"))
        return (
            f"the spec held: {total} probes checked, none deviated ({with_tolerated} with "
            f"tolerated variants); {answered} probes answered their question"
        )

    def text(self) -> str:
        """The report for a person to read."""
        lines = [
            f"novita-flux verify: {self.base_url} against the spec (version {self.spec_version})",
            "",
        ]
        width = max((len(result.probe.id) for result in self.results), default=0)
        for result in self.results:
            lines.append(f"{result.verdict:<10} {result.probe.id:<{width}}  {result.summary}")
            for finding in result.of_kind("deviates"):
                lines.append(f"{'':<13}{finding.line()}")
            if result.unchecked:
                lines.append(f"{'':<13}not checked: {result.unchecked}")
        tolerated = self.tolerated()
        if tolerated:
            lines += ["", "tolerated variants (the spec allows them, but does not prefer them):"]
            for finding, count in tolerated:
                lines.append(f"  {finding.line()} (in {count} probe(s))")
        answers = self.answers()
        if answers:
            lines += ["", "answers:"]
            for result, finding in answers:
                lines.append(f"  {result.probe.id}: {finding.line()}")
        lines += [
            "",
            f"price of the plan ${usd(self.plan.price)}; spent about ${usd(self.spent)} "
            "(the answers that generated images)",
            f"verdict: {self.verdict()}",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """The report for a machine: plain JSON types (amounts as decimal strings)."""
        return {
            "base_url": self.base_url,
            "spec_version": self.spec_version,
            "status": self.status,
            "exit_status": self.exit_status,
            "verdict": self.verdict(),
            "stopped": self.stopped,
            "price": usd(self.plan.price),
            "worst_case": usd(self.plan.worst_case),
            "spent": usd(self.spent),
            "probes": [result.as_dict() for result in self.results],
            "tolerated": [
                finding.as_dict() | {"probes": count} for finding, count in self.tolerated()
            ],
            "answers": [
                {"probe": result.probe.id, "question": result.probe.title} | finding.as_dict()
                for result, finding in self.answers()
            ],
        }


def _any_index(where: str) -> str:
    """`$.images[3].x` as `$.images[*].x`, `image 3: size` as `image *: size`."""
    return re.sub(r"image \d+:", "image *:", re.sub(r"\[\d+\]", "[*]", where))


def plan_text(plan: Plan, images_per_minute: int | None) -> str:
    """The plan as printed before anything is sent: every probe, its price, and the total."""
    width = max((len(probe.id) for probe in plan.probes), default=0)
    lines = [
        f"plan: {len(plan.probes)} probes, {plan.requests} requests, {plan.images} images, "
        "drawn from the spec"
    ]
    for probe in plan.probes:
        title = probe.title + (f" (also: {'; '.join(probe.covers)})" if probe.covers else "")
        if not probe.cost and probe.worst_cost:
            title += f" [refused unbilled; ${usd(probe.worst_cost)} if billed after all]"
        lines.append(f"  {probe.id:<{width}}  ${usd(probe.cost):<17}  {title}")
    refusals = sum(len(p.sends) for p in plan.probes if not p.cost and p.worst_cost)
    lines.append(
        f"price: ${usd(plan.price)} (exact: estimate_cost of every request the spec says is billed)"
    )
    lines.append(
        f"at worst: ${usd(plan.worst_case)}, should the server also bill the {refusals} requests "
        "it should refuse; --max-cost is held to this figure"
    )
    paced = sum(probe.images for probe in plan.probes if probe.check != "rate_limit")
    if images_per_minute and paced:
        minutes = paced / images_per_minute
        took = f"about {round(minutes)} minutes" if minutes >= 1.5 else "about a minute"
        lines.append(f"pacing: {images_per_minute} images a minute: {took} in all")
    return "\n".join(lines)
