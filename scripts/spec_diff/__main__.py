"""Compare the working contract with the last release, and hold releases to semver.

python -m scripts.spec_diff            # make spec-diff: the classified report
python -m scripts.spec_diff --check    # make check-spec (in make test): exit 1 on a broken rule
python -m scripts.spec_diff --release  # make spec-release: keep the working contract as released
python -m scripts.spec_diff OLD NEW    # any two contracts, no rules
"""

from __future__ import annotations

import argparse
import shutil
import sys
from functools import partial
from pathlib import Path

from scripts.spec_diff.evidence import EXAMPLES
from scripts.spec_diff.releases import ROOT, Failure, Project, Version, check, load
from scripts.spec_diff.report import Report, compare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", nargs="?", help="a contract (default: the last release)")
    parser.add_argument("new", nargs="?", help="a contract (default: the working one)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a rule is broken")
    parser.add_argument("--release", action="store_true", help="record the working contract")
    parser.add_argument("--examples", type=int, default=EXAMPLES, help="values per search")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    if args.old or args.new:
        if not (args.old and args.new):
            parser.error("give both OLD and NEW, or neither")
        old, new = load(Path(args.old)), load(Path(args.new))
        print(compare(old, new, args.old, args.new, args.examples).render())
        return 0
    project = Project(args.root.resolve())
    report, failures = check(project, partial(compare, examples=args.examples))
    if report is not None and (failures or not args.check):
        print(report.render(), end="\n\n")
    if not failures:
        print(verdict(report))
        return record(project) if args.release else 0
    sys.stdout.flush()  # the report first, then what failed
    for failure in failures:
        print(explain(project, failure), file=sys.stderr)
    return 1 if args.check or args.release else 0


def verdict(report: Report | None) -> str:
    if report is None:
        return "spec-diff: nothing to compare"
    if not report.findings:
        return f"spec-diff: {report.new_name} is {report.old_name}, unchanged; every rule holds"
    return (
        f"spec-diff: {report.new_name} against {report.old_name}: changes of level "
        f"{report.level.name.lower()}, and the version is raised enough; every rule holds"
    )


def explain(project: Project, failure: Failure) -> str:
    lines = [f"spec-diff: FAILED rule: {failure.rule}", f"  {failure.detail}"]
    if failure.report is not None:
        spec = project.name(project.spec)
        version = project.name(project.version_file)
        lines.append(f"  (raise __version__ in {version} and info.version in {spec},")
        lines.append("  run `make generate`, and add the version's section to CHANGELOG.md)")
        proven = failure.report.first_proof()
        if proven is not None:
            lines.append("  counterexample:")
            lines += ["    " + line for line in failure.report.explain(proven)]
        else:  # nothing to draw (a default, a word, an endpoint): the change itself
            lines.append("  the first change that needs it:")
            lines += ["    " + line for line in failure.report.explain(failure.report.findings[0])]
    return "\n".join(lines)


def record(project: Project) -> int:
    """Keep the working contract as the release of its version; a release is never rewritten."""
    version = Version.parse(load(project.spec)["info"]["version"])
    target = project.released / f"{version}.yaml"
    if target.exists():
        if target.read_bytes() != project.spec.read_bytes():
            print(f"spec-diff: {project.name(target)} exists and differs: raise the version")
            return 1
        print(f"spec-diff: {project.name(target)} is already recorded")
        return 0
    shutil.copyfile(project.spec, target)
    print(f"spec-diff: recorded {project.name(target)}; commit it with the release")
    return 0


if __name__ == "__main__":
    sys.exit(main())
