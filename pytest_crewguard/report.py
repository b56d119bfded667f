"""Rendering the session: the end-of-run table and the JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .limits import cost_text
from .money import usd
from .printable import one_line
from .session import CrewguardSession, GuardedTest

REPORT_VERSION = 1
SCHEMA = "crewguard-report/1"  # fields are only added within /1; a removal or change is /2


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}s"


def _cost(record: GuardedTest) -> str:
    notes = [f"unpriced: {', '.join(record.unpriced_models)}"] if record.unpriced_models else []
    if record.usage_unknown:
        notes.append(
            "no usage"
            if record.usage_unknown == record.llm_calls
            else f"{record.usage_unknown} without usage"
        )
    if not notes:
        return cost_text(record.cost, exact=True, free=bool(record.free_models))
    # Nothing known: a bare "unknown" rather than a lower bound of $0.
    text = "unknown" if record.cost == 0 else cost_text(record.cost, exact=False)
    return f"{text} ({'; '.join(notes)})"


def _tokens(value: int, unknown_calls: int) -> str:
    """A token total: ``≥1200`` when some calls have unknown usage, ``unknown`` when all do."""
    if not unknown_calls:
        return str(value)
    return f"≥{value}" if value else "unknown"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def table_rows(session: CrewguardSession) -> tuple[list[str], list[list[Any]]]:
    """The table's headers and rows, one per test (by node id) and the totals last: the one
    source of the terminal table and the Markdown summary."""
    headers = [
        "test",
        "calls",
        "in tok",
        "out tok",
        "cost",
        "tools",
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
            _tokens(r.input_tokens, r.usage_unknown),
            _tokens(r.output_tokens, r.usage_unknown),
            _cost(r),
            r.tool_calls,
            r.max_iterations,
            r.max_iter_hits,
            _seconds(r.elapsed_s),
            _seconds(r.projected_s),
            r.verdict,
        ]
        for r in records
    ]
    # A test that failed before any LLM call has nothing to project; it does not void the total.
    known = [r.projected_s for r in records if r.llm_calls]
    unknown_usage = session.usage_unknown
    total = "unknown" if session.total_cost == 0 and not session.cost_exact else None
    rows.append(
        [
            f"TOTAL ({_plural(len(records), 'test')})",
            session.total("llm_calls"),
            _tokens(session.total("input_tokens"), unknown_usage),
            _tokens(session.total("output_tokens"), unknown_usage),
            total or cost_text(session.total_cost, exact=session.cost_exact),
            session.total("tool_calls"),
            max((r.max_iterations for r in records), default=0),
            session.total("max_iter_hits"),
            _seconds(sum(r.elapsed_s for r in records)),
            _seconds(None if None in known else sum(p or 0.0 for p in known)),
            "",
        ]
    )
    return headers, rows


def budget_line(session: CrewguardSession) -> str | None:
    """``session budget: $0.0031 of $0.0100 (ok)``; ``None`` without a budget."""
    if session.budget is None:
        return None
    over = session.over_budget
    state = f"OVER by {usd(over)}" if over is not None else "ok"
    if over is None and not session.cost_exact:
        state = "unknown: some calls have no usage or no price"
    spent = cost_text(session.total_cost, exact=session.cost_exact)
    return f"session budget: {spent} of {usd(session.budget)} ({state})"


def table(session: CrewguardSession) -> str:
    """The per-test table, totals, budget and price data version."""
    from tabulate import tabulate

    headers, rows = table_rows(session)
    records = sorted(session.records.values(), key=lambda r: r.nodeid)
    unknown_usage = session.usage_unknown
    cells = [[one_line(v) if isinstance(v, str) else v for v in row] for row in rows]
    lines = [tabulate(cells, headers=headers, tablefmt="simple", disable_numparse=True)]
    if (budget := budget_line(session)) is not None:
        lines.append(budget)
    if unknown_usage:
        tests = sum(1 for r in records if r.usage_unknown)
        lines.append(
            f"usage unknown: {_plural(unknown_usage, 'LLM call')} in {_plural(tests, 'test')} had no "
            "readable usage block in the response (a stream recorded without usage, a count that is "
            "not a number?); their tokens and cost are not in the totals, which are lower bounds (≥)"
        )
    kinds = [
        (session.total("cached_tokens"), "cache reads"),
        (session.total("cache_write_tokens"), "cache writes"),
        (session.total("reasoning_tokens"), "reasoning"),
    ]
    if any(n for n, _ in kinds):  # each kind is priced at its own rate
        detail = ", ".join(f"{name} {n}" for n, name in kinds if n)
        lines.append(f"of the tokens: {detail} (included in the in/out tok columns)")
    free = sorted({m for r in records for m in r.free_models})
    if free:
        lines.append(f"free: {', '.join(free)} (listed at $0 by the price data)")
    if any(r.projected_s is None and r.llm_calls for r in records):
        lines.append(
            "projected n/a: calls without a recorded latency (cassettes recorded by another tool, "
            "or edited); record them again to get one"
        )
    lines += _retry_lines(records)
    lines.append(f"prices: {session.prices.version}")
    return "\n".join(lines)


def _retry_lines(records: list[GuardedTest]) -> list[str]:
    """Under the table: the tests whose calls were retried or waited (the waits are in projected)."""
    waited = [r for r in records if r.retries or r.waited_s or r.unanswered_faults]
    if not waited:
        return []
    lines = ["retries and waits (in projected time, not slept in replay):"]
    for r in waited:
        limited = f", {_plural(r.rate_limited_calls, 'call')} rate-limited" if r.rate_limited_calls else ""
        retries = f"{r.retries} {'retry' if r.retries == 1 else 'retries'}"
        if r.unanswered_faults:
            retries += f" answered, {_plural(r.unanswered_faults, 'fault answer')} the SDK gave up after"
        lines.append(f"  {r.nodeid}: {retries}{limited}, {r.waited_s:.1f}s waited")
    return lines


def _version(package: str) -> str | None:
    # Metadata only: reading crewai's version must not import crewai.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def budget_verdict(session: CrewguardSession) -> str:
    """``ok``, ``over``, ``unknown`` (unpriced models or calls without usage) or ``none``."""
    if session.budget is None:
        return "none"
    if session.over_budget is not None:
        return "over"
    return "ok" if session.budget_unknown() is None else "unknown"


def totals_data(session: CrewguardSession) -> dict[str, Any]:
    """The session totals of the JSON report."""
    records = list(session.records.values())
    projected = [r.projected_s for r in records if r.llm_calls]
    return {
        "tests": len(records),
        "llm_calls": session.total("llm_calls"),
        "tool_calls": session.total("tool_calls"),
        "tool_errors": session.total("tool_errors"),
        "input_tokens": session.total("input_tokens"),
        "output_tokens": session.total("output_tokens"),
        "tokens": session.total("tokens"),
        "cached_tokens": session.total("cached_tokens"),
        "cache_write_tokens": session.total("cache_write_tokens"),
        "reasoning_tokens": session.total("reasoning_tokens"),
        "cost": session.total_cost,
        "cost_exact": session.cost_exact,
        "usage_unknown": session.usage_unknown,
        "unpriced_models": session.unpriced_models,
        "max_iterations": max((r.max_iterations for r in records), default=0),
        "max_iter_hits": session.total("max_iter_hits"),
        "elapsed_s": sum(r.elapsed_s for r in records),
        "projected_s": None if None in projected else sum(p or 0.0 for p in projected),
        "failed": sum(1 for r in records if r.failed),
    }


def report_data(session: CrewguardSession, *, crewai: str | None = None) -> dict[str, Any]:
    """The JSON report (schema ``crewguard-report/1``): versions, totals, the budget and its
    verdict, and one entry per guarded test. A plain function of the session, so other
    renderings (Markdown, HTML) start from the same data.

    ``crewai`` is the CrewAI version to record (default: the installed one, from its metadata).
    """
    records = sorted(session.records.values(), key=lambda r: r.nodeid)
    over = session.over_budget
    return {
        "schema": SCHEMA,
        "version": REPORT_VERSION,
        "crewguard": _version("pytest-crewguard"),
        "crewai": crewai if crewai is not None else _version("crewai"),
        "prices": session.prices.version,
        "budget": {
            "max_cost": session.budget,
            "verdict": budget_verdict(session),
            "over_by": over,
            "problem": session.budget_unknown(),
        },
        "totals": totals_data(session),
        "tests": _scrubbed_ids({r.nodeid: r.to_json() for r in records}),
    }


def _scrubbed_ids(tests: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Test ids with secret values replaced (a key given as a parametrize value): reports are
    kept and shared like cassettes."""
    from .scrubbing import scrub_text
    from .secret_values import secret_env_values

    secrets = secret_env_values()
    out = {}
    for nodeid, entry in tests.items():
        clean = scrub_text(nodeid, secrets)
        out[clean] = entry if clean == nodeid else {**entry, "nodeid": clean}
    return out


def write_report(session: CrewguardSession, path: Path) -> None:
    """Write the JSON report atomically."""
    from .persister import atomic_write

    atomic_write(path, json.dumps(report_data(session), indent=2, sort_keys=True))
