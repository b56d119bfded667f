"""The Markdown summary (``--crewguard-markdown``, ``$GITHUB_STEP_SUMMARY``, ``crewguard report
--markdown``): the table, what is over budget, regressions and unpriced models.

Built from the JSON report's data, like every other rendering, so a saved report renders the
same as the run that wrote it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .baseline import Comparison
from .money import usd
from .printable import markdown_text, one_line


def _cell(value: Any) -> str:
    return markdown_text(str(value), cell=True)


def _line(value: Any) -> str:
    return markdown_text(str(value).replace("\n", " "))


def _code(value: str) -> str:
    # A code span shows HTML as text; a backtick would end it early.
    return f"`{one_line(value)}`" if "`" not in value else _line(value)


def markdown(data: dict[str, Any], comparison: Comparison | None = None, title: str = "crewguard") -> str:
    """The summary of a report; ``comparison`` (from :func:`baseline.compare`) adds
    regressions, changes and new or removed tests."""
    from tabulate import tabulate

    from .report import budget_line, table_rows
    from .report_file import session_from_report

    session = session_from_report(data)
    headers, rows = table_rows(session)
    rows[-1] = [f"**{rows[-1][0]}**", *rows[-1][1:]]
    body = [[_cell(v) for v in row] for row in rows]
    parts = [f"## {title}", tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)]
    if (budget := budget_line(session)) is not None:
        parts.append("**" + budget.replace("session budget", "Session budget") + "**")
    over = _over_budget(data)
    if over:
        parts.append("### Over budget\n\n" + "\n".join(f"- {_line(line)}" for line in over))
    if comparison is not None:
        parts.extend(_comparison(comparison))
    if session.unpriced_models:
        parts.append(
            "### Unpriced models\n\nNever counted as $0; their cost is not in the totals. Price them "
            "with `--crewguard-prices`:\n\n" + "\n".join(f"- {_code(m)}" for m in session.unpriced_models)
        )
    if session.usage_unknown:
        parts.append(f"{session.usage_unknown} LLM call(s) had no readable usage in the response: "
                     "tokens and cost are lower bounds.")
    parts.append(f"prices: {data.get('prices', 'unknown')}")
    return "\n\n".join(parts) + "\n"


def _over_budget(data: dict[str, Any]) -> list[str]:
    lines = []
    budget = data.get("budget")
    if isinstance(budget, dict) and budget.get("verdict") == "over":
        lines.append(
            f"session: {usd(float(data['totals']['cost']))} is over the session budget "
            f"{usd(float(budget['max_cost']))} by {usd(float(budget['over_by']))}"
        )
    elif isinstance(budget, dict) and budget.get("verdict") == "unknown":
        lines.append("session: the cost is unknown (unpriced models or calls without usage), "
                     "so the budget cannot be checked")
    for nodeid, entry in sorted(data["tests"].items()):
        if "max_cost" in entry.get("failed_gates", []):
            limit = entry.get("limits", {}).get("max_cost")
            of = f" of max_cost {usd(float(limit))}" if isinstance(limit, (int, float)) else ""
            lines.append(f"`{nodeid}`: {usd(float(entry.get('cost', 0)))}{of}")
    return lines


def comparison_markdown(comparison: Comparison, title: str = "crewguard comparison") -> str:
    """Two reports compared, as Markdown (``crewguard compare --markdown``)."""
    return "\n\n".join([f"## {title}", *_comparison(comparison)]) + "\n"


def _comparison(comparison: Comparison) -> list[str]:
    parts = []
    if comparison.regressions:
        parts.append("### Regressions\n\n" + "\n".join(f"- {_line(r)}" for r in comparison.regressions))
    changes = comparison.lines()
    parts.append(
        "### Changes since the baseline\n\n" + "\n".join(f"- {_line(line)}" for line in changes)
        if changes else "No changes since the baseline."
    )
    return parts


def write_markdown(text: str, path: Path | None, *, step_summary: bool) -> list[Path]:
    """Write the summary to ``path`` and append it to ``$GITHUB_STEP_SUMMARY`` when that is set
    and ``step_summary`` is on; returns the files written."""
    written = []
    if path is not None:
        from .persister import atomic_write

        atomic_write(path, text)
        written.append(path)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and summary:
        # Other steps append to it too.
        with open(summary, "a", encoding="utf-8", errors="backslashreplace") as out:
            out.write(text + "\n")
        written.append(Path(summary))
    return written
