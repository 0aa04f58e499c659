"""`novita-flux verify`: is the spec still true? The contract checked against the live API for a
fraction of a cent, with every difference reported (see novita_flux.verify).

The plan and its exact price go to stderr before anything is sent, then one line per probe as it
is judged; the report goes to stdout (as JSON with --json). Exit status: 0 the spec held, 1 the
API deviated, 2 nothing (or not everything) could be checked: no key, the API unreachable, the
key refused, or a plan over --max-cost (then nothing is sent).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from novita_flux._cli._common import EXIT_OK, BadInput, Console
from novita_flux._cli._options import add_output_options, budget, seconds, whole
from novita_flux._constants import DEFAULT_TIMEOUT
from novita_flux._errors import BudgetExceededError, MissingAPIKeyError
from novita_flux._spec import default_images_per_minute
from novita_flux.verify import DEFAULT_MAX_COST, GROUPS, Plan

if TYPE_CHECKING:
    from novita_flux.verify import ProbeResult


def add_parser(commands: Any) -> None:
    """Register `verify` on the CLI's subcommands."""
    verify = commands.add_parser(
        "verify",
        help="check the spec against the live API, for a fraction of a cent",
        description="Send a plan of probes drawn from the spec (bounds, image types, one invalid "
        "value per field, the authentication cases, the open questions) and report every "
        "difference between the answers and the spec. The plan and its exact price are "
        "printed before anything is sent.",
        epilog="Exit status: 0 the spec held, 1 the API deviated, 2 nothing (or not everything) "
        "could be checked (no key, network, key refused, over --max-cost).",
    )
    verify.add_argument(
        "--max-cost",
        type=budget("--max-cost"),
        default=DEFAULT_MAX_COST,
        metavar="USD",
        help=f"refuse a plan that could cost more; nothing is sent (default: {DEFAULT_MAX_COST})",
    )
    verify.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="write every exchange as a redacted VCR.py cassette, one per probe",
    )
    verify.add_argument(
        "--base-url", metavar="URL", help="default: NOVITA_BASE_URL, else the spec's server"
    )
    verify.add_argument(
        "--probe-rate-limit",
        action="store_true",
        help="also send enough tiny images at once to cross the per-minute limit, to see the "
        "429 as it comes (status, reason, message, Retry-After)",
    )
    verify.add_argument(
        "--images-per-minute",
        type=whole("images_per_minute", 0),
        metavar="N",
        help=f"pace the probes that generate images (default: the spec's limit, "
        f"{default_images_per_minute()}; 0 turns pacing off, e.g. for a local server)",
    )
    verify.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for each exchange, a positive number (inf: no limit); default {DEFAULT_TIMEOUT:g}",
    )
    verify.add_argument(
        "--only",
        type=_groups,
        metavar="GROUP[,GROUP]",
        help=f"send only these probe groups: {', '.join(GROUPS)}",
    )
    verify.add_argument(
        "--dry-run", action="store_true", help="print the plan and its price; send nothing"
    )
    add_output_options(verify)
    verify.set_defaults(run=cmd_verify)


def cmd_verify(args: argparse.Namespace, console: Console) -> int:
    from novita_flux.verify import build_plan, run  # here: only this command needs them
    from novita_flux.verify._report import plan_text

    limit = args.images_per_minute
    if limit is None:
        limit = default_images_per_minute()
    if args.dry_run:
        plan = build_plan(probe_rate_limit=args.probe_rate_limit, groups=args.only)
        console.result(plan.as_dict(), plan_text(plan, limit))
        return EXIT_OK
    if args.record is not None:
        try:
            args.record.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInput(f"--record {args.record}: {error.strerror or error}") from None

    progress = _Progress(limit, console)
    try:
        report = run(
            base_url=args.base_url,
            max_cost=args.max_cost,
            record=args.record,
            probe_rate_limit=args.probe_rate_limit,
            images_per_minute=args.images_per_minute,
            timeout=args.timeout,
            groups=args.only,
            on_plan=progress.plan,
            on_result=progress.result,
        )
    except MissingAPIKeyError as error:
        raise BadInput(f"{error}; nothing was sent") from None
    except BudgetExceededError as error:
        raise BadInput(f"{error}; nothing was sent (--max-cost sets the budget)") from None
    console.result(report.as_dict(), report.text())
    return report.exit_status


class _Progress:
    """The plan, then one line per probe as it is judged, on stderr."""

    def __init__(self, images_per_minute: int, console: Console) -> None:
        self.images_per_minute = images_per_minute
        self.console = console
        self.total = 0
        self.done = 0

    def plan(self, plan: Plan) -> None:
        from novita_flux.verify._report import plan_text

        self.total = len(plan.probes)
        for line in plan_text(plan, self.images_per_minute).splitlines():
            self.console.info(line)

    def result(self, result: ProbeResult) -> None:
        self.done += 1
        self.console.info(f"[{self.done}/{self.total}] {result.verdict:<10} {result.probe.id}")


def _groups(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GROUPS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the groups are {', '.join(GROUPS)} (comma-separated)"
        )
    return names
