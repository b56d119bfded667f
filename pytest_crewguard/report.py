"""Rendering the session: the end-of-run table and the JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .limits import usd
from .session import CrewguardSession, TestRecord

REPORT_VERSION = 1


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def _cost(record: TestRecord) -> str:
    if record.unpriced_models:
        return f"{usd(record.cost)} + unpriced ({', '.join(record.unpriced_models)})"
    return usd(record.cost)


def table(session: CrewguardSession) -> str:
    """The per-test table, totals, budget and price data version."""
    from tabulate import tabulate

    headers = [
        "test",
        "calls",
        "in tok",
        "out tok",
        "cost",
        "max iter",
        "max_iter hits",
        "time",
        "projected",
        "verdict",
    ]
    records = sorted(session.records.values(), key=lambda r: r.nodeid)
    rows: list[list[Any]] = [
        [
            r.nodeid,
            r.llm_calls,
            r.input_tokens,
            r.output_tokens,
            _cost(r),
            r.max_iterations,
            r.max_iter_hits,
            _seconds(r.elapsed_s),
            _seconds(r.projected_s),
            r.verdict,
        ]
        for r in records
    ]
    known = [r.projected_s for r in records]
    rows.append(
        [
            f"TOTAL ({len(records)} tests)",
            sum(r.llm_calls for r in records),
            sum(r.input_tokens for r in records),
            sum(r.output_tokens for r in records),
            usd(session.total_cost),
            max((r.max_iterations for r in records), default=0),
            sum(r.max_iter_hits for r in records),
            _seconds(sum(r.elapsed_s for r in records)),
            _seconds(None if None in known else sum(p or 0.0 for p in known)),
            "",
        ]
    )
    lines = [tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)]
    if session.budget is not None:
        over = session.over_budget
        state = f"OVER by {usd(over)}" if over is not None else "ok"
        lines.append(f"session budget: {usd(session.total_cost)} of {usd(session.budget)} ({state})")
    if any(r.projected_s is None for r in records):
        lines.append("projected n/a: the cassette has no recorded latencies (record it again to get them)")
    lines.append(f"prices: {session.prices.version}")
    return "\n".join(lines)


def report_data(session: CrewguardSession) -> dict[str, Any]:
    """The JSON report: totals and one entry per guarded test."""
    records = sorted(session.records.values(), key=lambda r: r.nodeid)
    return {
        "version": REPORT_VERSION,
        "prices": session.prices.version,
        "budget": session.budget,
        "totals": {
            "tests": len(records),
            "llm_calls": sum(r.llm_calls for r in records),
            "input_tokens": sum(r.input_tokens for r in records),
            "output_tokens": sum(r.output_tokens for r in records),
            "tokens": sum(r.tokens for r in records),
            "cost": session.total_cost,
        },
        "tests": {r.nodeid: r.to_json() for r in records},
    }


def write_report(session: CrewguardSession, path: Path) -> None:
    """Write the JSON report atomically."""
    from .persister import atomic_write

    atomic_write(path, json.dumps(report_data(session), indent=2, sort_keys=True))
