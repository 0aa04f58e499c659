"""Per-module mutation scores from mutmut's on-disk results (mutants/**/*.py.meta).

Usage: .venv/bin/python scripts/mutmut_table.py [--mutants DIR] [--check SURVIVORS.md]

Score = killed / (all - not checked - skipped); a timeout counts as a kill (the issue's rule:
a mutant that hangs the suite is caught by it). With --check, exits 1 unless every module
scores at least MINIMUM and every mutant that was not killed is listed in SURVIVORS.md as
"- `mutant name`: why it is equivalent or unreachable" (a survivor without such a line is a gap).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code  # the mapping `mutmut results` uses

MINIMUM = 90.0
COLUMNS = [
    "killed",
    "timeout",
    "survived",
    "no tests",
    "suspicious",
    "segfault",
    "caught by type check",
    "skipped",
    "not checked",
]
KILLS = {"killed", "timeout", "caught by type check", "segfault"}
UNCOUNTED = {"not checked", "skipped"}
LISTED = re.compile(r"^- `(?P<name>[^`]+)`\s*:\s*(?P<reason>\S.*)$")


def module_name(meta: Path, root: Path) -> str:
    parts = list(meta.relative_to(root).with_suffix("").with_suffix("").parts)
    return ".".join(parts[1:] if parts[0] == "src" else parts)


def read_results(root: Path) -> dict[str, dict[str, str]]:
    """Module -> mutant name -> status."""
    results: dict[str, dict[str, str]] = {}
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        results[module_name(meta, root)] = {
            name: status_by_exit_code[code] for name, code in codes.items()
        }
    return results


def score(counts: Counter[str]) -> float | None:
    tested = sum(counts.values()) - sum(counts[k] for k in UNCOUNTED)
    return 100 * sum(counts[k] for k in KILLS) / tested if tested else None


def print_table(results: dict[str, dict[str, str]]) -> dict[str, float | None]:
    rows = {module: Counter(statuses.values()) for module, statuses in results.items()}
    total: Counter[str] = sum(rows.values(), Counter())
    heads = ["module", "total", *COLUMNS, "score"]
    short = {"caught by type check": "typecheck", "not checked": "unchecked"}
    width = max([len("TOTAL"), *map(len, rows)])
    print(f"{heads[0]:<{width}} " + " ".join(f"{short.get(h, h):>9}" for h in heads[1:]))
    scores = {}
    for name, counts in [*rows.items(), ("TOTAL", total)]:
        value = score(counts)
        scores[name] = value
        shown = "-" if value is None else f"{value:.1f}%"
        cells = [sum(counts.values()), *(counts[k] for k in COLUMNS), shown]
        print(f"{name:<{width}} " + " ".join(f"{x:>9}" for x in cells))
    return scores


def listed_survivors(path: Path) -> dict[str, str]:
    listed = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := LISTED.match(line.strip()):
            listed[match["name"]] = match["reason"]
    return listed


def check(results: dict[str, dict[str, str]], scores: dict[str, float | None], path: Path) -> int:
    problems = []
    for module, value in scores.items():
        if module != "TOTAL" and value is not None and value < MINIMUM:
            problems.append(f"{module}: {value:.1f}% killed, below {MINIMUM:.0f}%")
    for module, statuses in results.items():
        unchecked = sum(status == "not checked" for status in statuses.values())
        if unchecked:
            problems.append(f"{module}: {unchecked} mutant(s) not checked: the run did not finish")
    listed = listed_survivors(path)
    for statuses in results.values():
        for name, status in sorted(statuses.items()):
            if status not in KILLS | UNCOUNTED and name not in listed:
                problems.append(f"{name}: {status}, not explained in {path}")
    alive = {name for statuses in results.values() for name in statuses}
    for name in sorted(set(listed) - alive):
        print(f"note: {path} lists {name}, which no longer exists", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"every module at or above {MINIMUM:.0f}%; every survivor explained in {path}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--check", type=Path, metavar="SURVIVORS.md")
    args = parser.parse_args()
    results = read_results(args.mutants)
    if not results:
        print(f"no mutmut results under {args.mutants}/", file=sys.stderr)
        return 2
    scores = print_table(results)
    return check(results, scores, args.check) if args.check else 0


if __name__ == "__main__":
    sys.exit(main())
