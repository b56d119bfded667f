"""``crewguard report FILE``: a saved JSON report as the end-of-run table (or Markdown)."""

from __future__ import annotations

import argparse

from .reports import read_report

NAME = "report"
HELP = "print the table of a saved --crewguard-report JSON file (or its Markdown summary)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a report written with --crewguard-report")
    parser.add_argument("--markdown", action="store_true", help="print the Markdown summary instead")


def run(args: argparse.Namespace) -> int:
    from ..report import table
    from ..report_file import session_from_report

    data = read_report(args.file)
    if args.markdown:
        from ..markdown import markdown

        print(markdown(data), end="")
    else:
        print(table(session_from_report(data)))
    return 0
