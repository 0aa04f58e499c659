"""Released contracts, versions and the changelog, and the rules they keep between them.

Each release's contract is kept as openapi/released/<version>.yaml (in the repository, so a
fresh clone has them all). The working contract is openapi/flux-1-schnell.yaml; its
`info.version` is the version being prepared, which must be the package's and have an entry in
CHANGELOG.md (Keep a Changelog). Against the last release, the working contract must carry a
version raised as far as its changes need (semantic versioning; below 1.0 each level moves one
place right), and so must every release against the one before it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, Final, NamedTuple

import yaml

from scripts.spec_diff.report import Level, Report

ROOT: Final = Path(__file__).resolve().parents[2]

VERSIONS_AGREE: Final = "the package version and the spec's info.version are the same"
VERSION_FORM: Final = "a version is MAJOR.MINOR.PATCH"
CHANGELOG_ENTRY: Final = "CHANGELOG.md has an entry, with at least one item, for every version"
RELEASE_LABELLED: Final = "openapi/released/<version>.yaml says <version> in its info.version"
RELEASE_KEPT: Final = "openapi/released/ keeps the contract of at least one release"
NOT_BELOW: Final = "the working version is not below the last release"
BUMP: Final = {
    Level.BREAKING: "a breaking change raises the major version (below 1.0: the minor)",
    Level.COMPATIBLE: "a compatible change raises the minor version (below 1.0: the patch)",
    Level.DOCUMENTATION: "a changed contract gets a new version (for words alone: the patch)",
}


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: object) -> Version:
        match = re.fullmatch(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)", str(text))
        if match is None:
            raise ValueError(f"{text!r} is not of the form MAJOR.MINOR.PATCH")
        return cls(*map(int, match.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    def least_after(self, level: Level) -> Version:
        """The smallest version a release with changes of this level may take after this one."""
        major, minor, patch = self
        if level is Level.NONE:
            return self
        if level is Level.DOCUMENTATION or (level is Level.COMPATIBLE and major == 0):
            return Version(major, minor, patch + 1)
        if level is Level.COMPATIBLE or major == 0:
            return Version(major, minor + 1, 0)
        return Version(major + 1, 0, 0)


@dataclass(frozen=True)
class Project:
    """Where a checkout keeps what the rules read (tests build small ones in a folder)."""

    root: Path = ROOT

    @property
    def spec(self) -> Path:
        return self.root / "openapi" / "flux-1-schnell.yaml"

    @property
    def released(self) -> Path:
        return self.root / "openapi" / "released"

    @property
    def changelog(self) -> Path:
        return self.root / "CHANGELOG.md"

    @property
    def version_file(self) -> Path:
        return self.root / "overlay" / "novita_flux" / "_version.py"

    def name(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


@dataclass(frozen=True)
class Failure:
    rule: str
    detail: str
    report: Report | None = None  # the comparison that broke the rule, with its proofs


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return document


def package_version(project: Project) -> str:
    """__version__ as written in _version.py, read as hatch reads it (no import: the installed
    package may be another checkout's)."""
    text = project.version_file.read_text(encoding="utf-8")
    match = re.search(r"^__version__ = \"([^\"]+)\"$", text, re.MULTILINE)
    return match.group(1) if match else "(none)"


def changelog_entries(text: str) -> dict[str, str]:
    """Version -> the text of its section, from Keep a Changelog's `## [1.2.3] - 2026-01-31`."""
    headings = list(re.finditer(r"^## \[([^\]]+)\].*$", text, re.MULTILINE))
    ends = [heading.start() for heading in headings[1:]] + [len(text)]
    return {h.group(1): text[h.end() : end] for h, end in zip(headings, ends, strict=True)}


def releases(project: Project) -> dict[Version, Path]:
    """The kept contracts by version, oldest first; a file not named by a version is refused."""
    found = {Version.parse(path.stem): path for path in project.released.glob("*.yaml")}
    return dict(sorted(found.items()))


def version_failures(project: Project) -> list[Failure]:
    """The rules that need no comparison: cheap enough for a unit test of the real checkout."""
    failures = []
    spec_version, package = load(project.spec)["info"]["version"], package_version(project)
    if str(spec_version) != package:
        detail = (
            f"{project.name(project.version_file)} says {package}, info.version says {spec_version}"
        )
        failures.append(Failure(VERSIONS_AGREE, detail))
    try:
        kept = releases(project)
        working = Version.parse(spec_version)
    except ValueError as error:
        return [*failures, Failure(VERSION_FORM, str(error))]
    for version, path in kept.items():
        if load(path)["info"]["version"] != str(version):
            failures.append(Failure(RELEASE_LABELLED, f"{project.name(path)} says otherwise"))
    entries = changelog_entries(project.changelog.read_text(encoding="utf-8"))
    for version in sorted({*kept, working}):
        if not re.search(r"^\s*[-*] \S", entries.get(str(version), ""), re.MULTILINE):
            detail = f"no `## [{version}] - YYYY-MM-DD` section with a `- ` item in CHANGELOG.md"
            failures.append(Failure(CHANGELOG_ENTRY, detail))
    if not kept:
        failures.append(Failure(RELEASE_KEPT, f"{project.name(project.released)} is empty"))
    elif working < max(kept):
        failures.append(Failure(NOT_BELOW, f"{working} is below the release {max(kept)}"))
    return failures


Compare = Callable[[Mapping[str, Any], Mapping[str, Any], str, str], Report]


def bump_failure(old: Version, new: Version, report: Report) -> Failure | None:
    """The rule a release from `old` to `new` breaks, if any, given what changed between them."""
    least = old.least_after(report.level)
    if new >= least:
        return None
    if new == old:
        detail = f"{report.new_name} still says {new}: make it {least} or higher"
    else:
        detail = f"{old} -> {new} is not enough: make it {least} or higher"
    return Failure(BUMP[report.level], detail, report)


def check(project: Project, compare: Compare) -> tuple[Report | None, list[Failure]]:
    """Every rule, and the report of the working contract against the last release."""
    failures = version_failures(project)
    if any(failure.rule in (VERSION_FORM, RELEASE_KEPT) for failure in failures):
        return None, failures
    kept = list(releases(project).items())
    for (old, old_path), (new, new_path) in pairwise(kept):
        report = compare(load(old_path), load(new_path), f"released {old}", f"released {new}")
        failure = bump_failure(old, new, report)
        failures += [failure] if failure else []
    last, last_path = kept[-1]
    working_spec = load(project.spec)
    working = Version.parse(working_spec["info"]["version"])
    report = compare(load(last_path), working_spec, f"released {last}", f"working {working}")
    failure = bump_failure(last, working, report)
    return report, failures + ([failure] if failure else [])
