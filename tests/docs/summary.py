"""The closing line of a run: how many code blocks of README and docs/ were run, by kind,
summed over xdist's workers (each document's counts travel on its test's report)."""

from __future__ import annotations

from collections import Counter
from typing import Any

PROPERTY = "docs_blocks"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    documents = 0
    totals: Counter[str] = Counter()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == PROPERTY:
                    documents += 1
                    totals.update(value)
    if not documents:
        return
    # A doctest block counts each of its `>>>` statements; every other kind counts blocks.
    names = {"doctest": "doctest statements", "pytest": "pytest files", "console": "sessions"}
    run = sum(n for kind, n in totals.items() if kind != "not run")
    kinds = ", ".join(
        f"{names.get(kind, kind)} {n}" for kind, n in sorted(totals.items()) if kind != "not run"
    )
    terminalreporter.section("documentation examples")
    terminalreporter.write_line(
        f"{run} examples of README, CONTRIBUTING and docs/ run ({kinds}) in {documents} "
        f"documents; {totals['not run']} blocks shown but not run, each saying why"
    )
