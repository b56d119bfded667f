"""The end-of-run summary in the terminal: the table, budget, baseline and notes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from .money import usd
from .printable import printable
from .run_state import RunState
from .session import CrewguardSession, GuardedTest


class Writer(Protocol):
    """The part of pytest's terminal reporter the summary uses."""

    stats: dict[str, Any]

    def write_sep(self, sep: str, title: str) -> Any: ...

    def write_line(self, line: str, **markup: bool) -> Any: ...


def write_summary(out: Writer, state: RunState) -> None:
    from .report import report_data, table

    results = state.session()
    out.write_sep("=", "crewguard")
    _say(out, table(results))
    if (unknown := results.budget_unknown()) is not None:  # unpriced models, calls without usage
        _say(out, "crewguard: " + unknown, red=True, bold=True)
    if state.baseline is not None:
        from .baseline import comparison_lines

        changes = comparison_lines(state.baseline, report_data(results))
        _say(out, "changes since the baseline:" if changes else "no changes since the baseline")
        for line in changes:
            _say(out, f"  {line}")
    for line in state.regressions():
        _say(out, f"crewguard: regression: {line}", red=True, bold=True)
    for problem in state.write_problems:
        _say(out, f"crewguard: {problem}", red=True, bold=True)
    for note, count in _notes(results.records.values()):
        _say(out, f"crewguard: {count} {'test' if count == 1 else 'tests'} {note}")
    passed = not out.stats.get("failed") and not out.stats.get("error")
    if (message := over_budget_message(results, tests_passed=passed)) is not None:
        _say(out, message, red=True, bold=True)


def _say(out: Writer, line: str, **markup: bool) -> None:
    # Model names, test ids and baseline entries come from recordings and saved files.
    out.write_line(printable(line), **markup)


def over_budget_message(
    results: CrewguardSession, *, tests_passed: bool, option: str = "--crewguard-max-cost"
) -> str | None:
    """Why the session budget fails the run (``None`` within it): the plugin and
    ``crewguard check`` say it alike."""
    over = results.over_budget
    if over is None:
        return None
    return (
        f"crewguard: session cost {usd(results.total_cost)} is over {option}="
        f"{usd(results.budget or 0.0)} by {usd(over)}; failing the run"
        + (" even though the tests passed." if tests_passed else ".")
    )


def _notes(records: Iterable[GuardedTest]) -> list[tuple[str, int]]:
    """Each distinct note of the session's tests, with how many tests it concerns, once."""
    counts: dict[str, int] = {}
    for record in records:
        for note in dict.fromkeys(record.notes):
            counts[note] = counts.get(note, 0) + 1
    return list(counts.items())
