"""``crewguard check FILE --max-cost X [--baseline B --fail RULES]``: the session gates on a
saved (usually merged) report, with the plugin's messages and exit codes: 0 within every gate,
1 when a test failed, the session budget is broken or a regression is past its rule."""

from __future__ import annotations

import argparse
from typing import Any

from ..printable import printable
from .recorded import CommandError
from .reports import FAIL_HELP, budget, read_report, thresholds

NAME = "check"
HELP = "apply the session budget and a baseline comparison to a saved (merged) report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a report (crewguard merge output, or one run's)")
    parser.add_argument("--max-cost", metavar="USD", help="session budget (default: the report's own)")
    parser.add_argument("--baseline", metavar="FILE", help="an earlier report to compare with")
    parser.add_argument("--fail", metavar="RULES", help=FAIL_HELP)


def check_lines(data: dict[str, Any], max_cost: float | None = None,
                baseline: dict[str, Any] | None = None, rules: Any = ()) -> tuple[list[str], bool]:
    # The budget named as it was given: --max-cost here, else the run's --crewguard-max-cost.
    """What the plugin prints after its table for this report, and whether it fails the run."""
    from ..baseline import compare
    from ..report import table
    from ..report_file import session_from_report
    from ..terminal import over_budget_message

    session = session_from_report(data, budget=max_cost)
    lines = [table(session)]
    failed = False
    if (unknown := session.budget_unknown()) is not None:
        lines.append("crewguard: " + unknown)
        failed = True
    if baseline is not None:
        comparison = compare(baseline, data, list(rules))
        changes = comparison.lines()
        lines.append("changes since the baseline:" if changes else "no changes since the baseline")
        lines.extend(f"  {line}" for line in changes)
        lines.extend(f"crewguard: regression: {line}" for line in comparison.regressions)
        failed = failed or bool(comparison.regressions)
    broken = sorted(
        n for n, r in session.records.items() if r.failed
    )
    if broken:
        lines.append(f"crewguard: {len(broken)} guarded test(s) failed: {', '.join(broken)}")
    option = "--max-cost" if max_cost is not None else "--crewguard-max-cost"
    if (message := over_budget_message(session, tests_passed=not broken, option=option)) is not None:
        lines.append(message)
        failed = True
    return lines, failed or bool(broken)


def run(args: argparse.Namespace) -> int:
    rules = thresholds(args.fail)
    if rules and not args.baseline:
        raise CommandError("--fail needs --baseline=FILE, an earlier report to compare with", 2)
    max_cost = budget(args.max_cost)
    data = read_report(args.file)
    baseline = read_report(args.baseline) if args.baseline else None
    lines, failed = check_lines(data, max_cost, baseline, rules)
    print(printable("\n".join(lines)))
    return 1 if failed else 0
