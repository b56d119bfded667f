"""``crewguard compare BASE NEW``: what changed between two saved reports, test by test.

The live canary's check: compare the replay report with one re-recorded against the provider
to see cost, tokens, iterations, max_iter hits and verdicts (output validity) drift.
"""

from __future__ import annotations

import argparse

from ..printable import printable
from .reports import FAIL_HELP, read_report, thresholds

NAME = "compare"
HELP = "compare two saved reports; with --fail, exit 1 on regressions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help="the earlier report (the baseline, or the replay)")
    parser.add_argument("new", metavar="NEW", help="the later report (this change, or the live run)")
    parser.add_argument("--fail", metavar="RULES", help=FAIL_HELP)
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for a step summary)")


def run(args: argparse.Namespace) -> int:
    from ..baseline import compare

    rules = thresholds(args.fail)
    base, new = read_report(args.base), read_report(args.new)
    comparison = compare(base, new, rules)
    if args.markdown:
        from ..markdown import comparison_markdown

        print(comparison_markdown(comparison), end="")
    else:
        lines = comparison.lines()
        print("changes since the baseline:" if lines else "no changes since the baseline")
        for line in lines:
            print(printable(f"  {line}"))
        for line in comparison.regressions:
            print(printable(f"crewguard: regression: {line}"))
    return 1 if comparison.regressions else 0
