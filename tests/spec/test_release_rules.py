"""Versions, released contracts and the changelog agree, and a breaking change needs its bump.

The rules run on small projects made in a temporary folder from the first release (so they do
not move when the checkout's own version does), edited there; the real checkout is only read.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.spec_diff.__main__ import main
from scripts.spec_diff.releases import (
    BUMP,
    CHANGELOG_ENTRY,
    NOT_BELOW,
    VERSIONS_AGREE,
    Failure,
    Project,
    Version,
    changelog_entries,
    check,
    load,
    package_version,
    releases,
    version_failures,
)
from scripts.spec_diff.report import Level, compare

EXAMPLES = "50"  # per search: enough for the breaks made here, which are found in a few


def test_the_checkout_agrees_on_its_version() -> None:
    project = Project()
    spec_version = load(project.spec)["info"]["version"]
    assert package_version(project) == spec_version
    assert spec_version in changelog_entries(project.changelog.read_text(encoding="utf-8"))
    assert Version.parse(spec_version) >= max(releases(project))
    assert version_failures(project) == []


FIRST_CHANGELOG = """# Changelog

## [Unreleased]

## [0.1.0] - 2026-11-30

### Added

- The client.
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """What the rules read, as just after the first release: 0.1.0 released and being worked on."""
    made = Project(tmp_path)
    first = Project().released / "0.1.0.yaml"
    made.released.mkdir(parents=True)
    made.version_file.parent.mkdir(parents=True)
    shutil.copyfile(first, made.released / "0.1.0.yaml")
    shutil.copyfile(first, made.spec)
    made.version_file.write_text('__version__ = "0.1.0"\n', encoding="utf-8")
    made.changelog.write_text(FIRST_CHANGELOG, encoding="utf-8")
    return made


def edit_spec(project: Project, edit: Callable[[dict[str, Any]], None]) -> None:
    spec = load(project.spec)
    edit(spec)
    project.spec.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def narrow_steps(spec: dict[str, Any]) -> None:
    spec["components"]["schemas"]["Flux1SchnellRequest"]["properties"]["steps"]["maximum"] = 50


def set_version(project: Project, version: str, *, changelog: bool = True) -> None:
    edit_spec(project, lambda spec: spec["info"].update(version=version))
    project.version_file.write_text(f'__version__ = "{version}"\n', encoding="utf-8")
    if changelog:
        text = project.changelog.read_text(encoding="utf-8")
        entry = f"## [{version}] - 2026-12-01\n\n### Changed\n\n- `steps` is at most 50.\n\n"
        project.changelog.write_text(text.replace("## [0.1.0]", entry + "## [0.1.0]", 1))


def failures_of(project: Project) -> list[Failure]:
    return check(project, partial(compare, examples=int(EXAMPLES)))[1]


def test_a_breaking_edit_without_a_bump_fails_with_the_rule_and_a_counterexample(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_spec(project, narrow_steps)
    assert main(["--check", "--root", str(project.root), "--examples", EXAMPLES]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"spec-diff: FAILED rule: {BUMP[Level.BREAKING]}\n")
    assert "working 0.1.0 still says 0.1.0: make it 0.2.0 or higher" in err
    assert "counterexample:" in err
    assert "- request steps: maximum 100 -> 50" in err
    assert '"steps": 100' in err  # the value: the old maximum, refused now
    assert "Breaking for callers" in out  # and the whole report before it


def test_the_bump_and_a_changelog_entry_make_it_pass(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_spec(project, narrow_steps)
    set_version(project, "0.2.0")
    assert main(["--check", "--root", str(project.root), "--examples", EXAMPLES]) == 0
    assert "changes of level breaking, and the version is raised enough" in capsys.readouterr().out


def test_a_patch_bump_is_not_enough_for_a_breaking_change(project: Project) -> None:
    edit_spec(project, narrow_steps)
    set_version(project, "0.1.1")
    (failure,) = failures_of(project)
    assert (failure.rule, failure.detail) == (
        BUMP[Level.BREAKING],
        "0.1.0 -> 0.1.1 is not enough: make it 0.2.0 or higher",
    )


def test_a_bump_without_a_changelog_entry_fails(project: Project) -> None:
    edit_spec(project, narrow_steps)
    set_version(project, "0.2.0", changelog=False)
    assert [failure.rule for failure in version_failures(project)] == [CHANGELOG_ENTRY]


def test_a_package_version_other_than_the_spec_s_fails(project: Project) -> None:
    project.version_file.write_text('__version__ = "0.1.1"\n', encoding="utf-8")
    (failure,) = version_failures(project)
    assert failure.rule == VERSIONS_AGREE
    assert "says 0.1.1, info.version says 0.1.0" in failure.detail


def test_a_documentation_change_still_needs_a_new_version(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_spec(project, lambda spec: spec["info"].update(title="FLUX.1 [schnell]"))
    (failure,) = failures_of(project)
    assert failure.rule == BUMP[Level.DOCUMENTATION]
    assert main(["--check", "--root", str(project.root), "--examples", EXAMPLES]) == 1
    err = capsys.readouterr().err
    assert "the first change that needs it:\n    - spec: info.title changed" in err
    set_version(project, "0.1.1")
    assert failures_of(project) == []


def test_the_working_version_may_not_go_below_the_last_release(project: Project) -> None:
    shutil.copyfile(project.released / "0.1.0.yaml", project.released / "0.3.0.yaml")
    released = load(project.released / "0.3.0.yaml")
    released["info"]["version"] = "0.3.0"
    (project.released / "0.3.0.yaml").write_text(yaml.safe_dump(released), encoding="utf-8")
    rules = [failure.rule for failure in version_failures(project)]
    assert NOT_BELOW in rules


def test_a_release_recorded_without_the_bump_it_needed_fails(project: Project) -> None:
    # Recording a release does not launder a break: every release is held to the one before.
    edit_spec(project, narrow_steps)
    set_version(project, "0.1.1")
    shutil.copyfile(project.spec, project.released / "0.1.1.yaml")
    (failure,) = failures_of(project)
    assert failure.rule == BUMP[Level.BREAKING]
    assert failure.report is not None
    assert failure.report.old_name == "released 0.1.0"
    assert failure.report.new_name == "released 0.1.1"


def test_spec_release_keeps_the_contract_once_and_never_rewrites_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_spec(project, narrow_steps)
    set_version(project, "0.2.0")
    root = ["--root", str(project.root), "--examples", EXAMPLES]
    assert main(["--release", *root]) == 0
    assert (project.released / "0.2.0.yaml").read_bytes() == project.spec.read_bytes()
    assert main(["--release", *root]) == 0
    assert "openapi/released/0.2.0.yaml is already recorded" in capsys.readouterr().out
    edit_spec(project, lambda spec: spec["info"].update(title="changed after the release"))
    assert main(["--release", *root]) == 1  # the contract changed: 0.2.0 is taken
    assert (project.released / "0.2.0.yaml").read_bytes() != project.spec.read_bytes()


@pytest.mark.parametrize(
    ("before", "level", "least"),
    [
        ("0.1.0", Level.BREAKING, "0.2.0"),
        ("0.1.3", Level.COMPATIBLE, "0.1.4"),
        ("0.1.3", Level.DOCUMENTATION, "0.1.4"),
        ("1.2.3", Level.BREAKING, "2.0.0"),
        ("1.2.3", Level.COMPATIBLE, "1.3.0"),
        ("1.2.3", Level.DOCUMENTATION, "1.2.4"),
        ("1.2.3", Level.NONE, "1.2.3"),
    ],
)
def test_the_least_version_after_a_change_follows_semver(
    before: str, level: Level, least: str
) -> None:
    assert str(Version.parse(before).least_after(level)) == least


@pytest.mark.parametrize("text", ["v3beta", "1.2", "01.2.3", "1.2.3-rc1"])
def test_a_version_is_major_minor_patch(text: str) -> None:
    with pytest.raises(ValueError, match=r"MAJOR\.MINOR\.PATCH"):
        Version.parse(text)
