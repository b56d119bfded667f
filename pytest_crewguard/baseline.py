"""Comparing this run with an earlier JSON report (``--crewguard-baseline``).

Modelled on pytest-benchmark's ``--benchmark-compare-fail=mean:5%``:
``--crewguard-compare-fail=cost:10%,tokens:10%,llm_calls:0`` fails the run when a test (or the
total) grew by more than 10% in cost or tokens, or made any more LLM calls than before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .money import usd

METRICS: tuple[str, ...] = ("cost", "tokens", "input_tokens", "output_tokens", "llm_calls")


@dataclass(frozen=True)
class Threshold:
    """How much ``metric`` may grow: a fraction (``relative``) or an absolute amount."""

    metric: str
    limit: float
    relative: bool

    def exceeded(self, before: float, after: float) -> bool:
        allowed = before * (1 + self.limit) if self.relative else before + self.limit
        return after > allowed + 1e-12

    def __str__(self) -> str:
        return f"{self.metric}:{self.limit * 100:g}%" if self.relative else f"{self.metric}:{self.limit:g}"


def parse_compare_fail(text: str) -> list[Threshold]:
    """``"cost:10%,llm_calls:0"`` -> thresholds; a malformed one raises ``ConfigError``."""
    thresholds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        metric, sep, amount = part.partition(":")
        problem = None
        if not sep:
            problem = "expected metric:limit"
        elif metric not in METRICS:
            problem = f"unknown metric {metric!r} (one of {', '.join(METRICS)})"
        relative = amount.endswith("%")
        try:
            limit = float(amount[:-1] if relative else amount)
        except ValueError:
            limit = -1.0
        if problem is None and limit < 0:
            problem = f"limit {amount!r} is not a number >= 0 (or a percentage like 10%)"
        if problem:
            raise ConfigError(
                f"--crewguard-compare-fail={text!r}: {part!r}: {problem}; "
                "e.g. cost:10%,tokens:10%,llm_calls:0"
            )
        thresholds.append(Threshold(metric, limit / 100 if relative else limit, relative))
    return thresholds


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier ``--crewguard-report``; a file that is not one raises ``ConfigError``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--crewguard-baseline={path}: cannot read it as JSON ({err})") from None
    if not isinstance(data, dict) or "tests" not in data or "totals" not in data:
        raise ConfigError(
            f"--crewguard-baseline={path}: not a crewguard report (write one with --crewguard-report=PATH)"
        )
    return data


def _entries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = dict(report.get("tests", {}))
    entries["TOTAL"] = report.get("totals", {})
    return entries


def regressions(baseline: dict[str, Any], current: dict[str, Any], thresholds: list[Threshold]) -> list[str]:
    """One line per test (and the total) that grew past a threshold."""
    found = []
    before_all = _entries(baseline)
    for name, after in _entries(current).items():
        before = before_all.get(name)
        if before is None:
            continue
        for threshold in thresholds:
            old = float(before.get(threshold.metric) or 0)
            new = float(after.get(threshold.metric) or 0)
            if threshold.exceeded(old, new):
                found.append(
                    f"{name}: {threshold.metric} {_fmt(threshold.metric, old)} -> "
                    f"{_fmt(threshold.metric, new)} ({_change(old, new)}; allowed {threshold})"
                )
    return found


def _fmt(metric: str, value: float) -> str:
    return usd(value) if metric == "cost" else f"{value:g}"


def _change(old: float, new: float) -> str:
    if old == 0:
        return "new" if new else "no change"
    return f"{(new - old) / old * 100:+.1f}%"


def comparison_lines(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Per-test changes in cost, tokens and calls since the baseline."""
    lines = []
    before_all = _entries(baseline)
    for name, after in _entries(current).items():
        before = before_all.get(name)
        if before is None:
            lines.append(f"{name}: new since the baseline")
            continue
        changes = [
            f"{m} {_fmt(m, float(before.get(m) or 0))} -> {_fmt(m, float(after.get(m) or 0))} "
            f"({_change(float(before.get(m) or 0), float(after.get(m) or 0))})"
            for m in ("cost", "tokens", "llm_calls")
            if float(before.get(m) or 0) != float(after.get(m) or 0)
        ]
        if changes:
            lines.append(f"{name}: " + ", ".join(changes))
    return lines


def load_comparison(
    baseline: Path | None, compare_fail: str | None
) -> tuple[dict[str, Any] | None, list[Threshold]]:
    """The baseline report and the regressions that fail the run, as the options name them.

    Raises ``ConfigError`` for a threshold without a baseline, a bad threshold or report.
    """
    if compare_fail and baseline is None:
        raise ConfigError(
            "--crewguard-compare-fail needs --crewguard-baseline=PATH, an earlier "
            "report written with --crewguard-report=PATH"
        )
    thresholds = parse_compare_fail(compare_fail) if compare_fail else []
    return (load_baseline(baseline) if baseline else None), thresholds
