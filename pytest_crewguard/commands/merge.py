"""``crewguard merge A.json B.json ... -o ALL.json``: the reports of a sharded suite as one.

Totals are recomputed from the tests, by the same code as a single run's, so a merged report
equals an unsharded run's to the cent and the token. Shards that ran the same test, or priced
with different price data, are refused: their sum would mean nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .recorded import CommandError
from .reports import read_report

NAME = "merge"
HELP = "merge the JSON reports of a sharded suite into one (-o FILE)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="shard reports (--crewguard-report)")
    parser.add_argument("-o", "--output", required=True, metavar="FILE",
                        help="where to write the merged report")


def merge_reports(shards: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One report from shard reports, as (name, report) pairs; ``ConfigError`` for overlapping
    node ids (a shard given twice too) or different price data."""
    from ..report import report_data
    from ..report_file import budget_of, session_from_report

    if not shards:
        raise ConfigError("nothing to merge: give the shard reports")
    prices = [(name, str(data.get("prices"))) for name, data in shards]
    if len({version for _, version in prices}) > 1:
        listed = "; ".join(f"{name}: {version}" for name, version in prices)
        raise ConfigError(f"the reports were priced with different price data ({listed}); run every "
                          "shard with the same pytest-crewguard, genai-prices and --crewguard-prices")
    seen: dict[str, str] = {}
    for name, data in shards:
        for nodeid in data["tests"]:
            if nodeid in seen:
                raise ConfigError(f"{nodeid} is in both {seen[nodeid]} and {name}: shards must not "
                                  "overlap (split the suite with -k, or pytest-split / --splits)")
            seen[nodeid] = name
    reports = [data for _, data in shards]
    first = reports[0]
    budgets = {name: budget_of(data) for name, data in shards}
    if len(set(budgets.values())) > 1:  # dropping one would let `crewguard check` pass unchecked
        listed = ", ".join(f"{name}: {'none' if b is None else f'${b:g}'}" for name, b in budgets.items())
        raise ConfigError(f"the reports were checked against different session budgets ({listed}); run "
                          "every shard with the same --crewguard-max-cost")
    session = session_from_report(first, budget=budget_of(first))
    for data in reports[1:]:
        for record in session_from_report(data).records.values():
            session.add(record)
    crewai = next((str(d["crewai"]) for d in reports if d.get("crewai")), None)
    merged = report_data(session, crewai=crewai)
    merged["merged_from"] = [name for name, _ in shards]
    return merged


def run(args: argparse.Namespace) -> int:
    from ..output_path import output_problem
    from ..persister import atomic_write

    problem = output_problem(Path(args.output))
    if problem:
        raise CommandError(f"-o {args.output}: {problem}; give a file path that can be written", 2)
    shards = [(path, read_report(path)) for path in args.files]
    try:
        merged = merge_reports(shards)
    except ConfigError as err:
        raise CommandError(str(err), 1) from None
    try:
        atomic_write(Path(args.output), json.dumps(merged, indent=2, sort_keys=True))
    except OSError as err:
        raise CommandError(f"could not write {args.output}: {err.strerror or err}", 1) from None
    totals = merged["totals"]
    print(f"merged {len(shards)} reports ({totals['tests']} tests, {totals['llm_calls']} LLM calls) "
          f"into {args.output}")
    return 0
