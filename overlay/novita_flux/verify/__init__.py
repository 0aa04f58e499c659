"""Is the spec still true? The contract checked against the live API, for a fraction of a cent.

    from novita_flux import verify

    report = verify.run(max_cost="0.01")  # key from NOVITA_API_KEY
    print(report.text())  # per probe: conforms, deviates, tolerated or answered; then a verdict
    raise SystemExit(report.exit_status)  # 0 the spec held, 1 the API deviated, 2 unchecked

A plan of probes is drawn from the spec (every request field at its bounds at the cheapest
sizes, each image type, one invalid value per field, the three authentication cases, the open
questions of the project's evidence, and optionally the rate limit), priced exactly, and held to
`max_cost` before anything is sent. Every answer is judged against the spec with its
tolerances, every image downloaded and read, and `record=` writes each exchange as a redacted
VCR.py cassette. `novita-flux verify` is the same from the command line.

Not imported by `import novita_flux`: only a verification needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The data model is light; the machinery (HTTP, judging, recording) loads on first use, so the
# CLI can describe `verify` without importing it.
from novita_flux.verify._probes import DEFAULT_MAX_COST, GROUPS, Plan, Probe, Send

if TYPE_CHECKING:
    from novita_flux.verify._plan import build_plan
    from novita_flux.verify._report import Finding, ProbeResult, Report
    from novita_flux.verify._run import run

_LAZY = {
    "build_plan": "_plan",
    "Finding": "_report",
    "ProbeResult": "_report",
    "Report": "_report",
    "run": "_run",
}

__all__ = [
    "DEFAULT_MAX_COST",
    "GROUPS",
    "Finding",
    "Plan",
    "Probe",
    "ProbeResult",
    "Report",
    "Send",
    "build_plan",
    "run",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
