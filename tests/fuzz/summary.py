"""The closing summary of a run: how many inputs each entry point took in the fuzz suites, and
what became of them, summed over xdist's workers (each test's counts travel on its report)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

PROPERTY = "fuzz_inputs"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    totals: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == PROPERTY:
                    for entry_point, outcomes in value.items():
                        totals[entry_point].update(outcomes)
    if not totals:
        return
    terminalreporter.section("fuzz inputs per entry point")
    for entry_point in sorted(totals):
        outcomes = totals[entry_point]
        said = ", ".join(f"{outcome} {n}" for outcome, n in sorted(outcomes.items()))
        terminalreporter.write_line(f"{entry_point}: {sum(outcomes.values())} ({said})")
