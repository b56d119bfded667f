"""Comparing a run with an earlier JSON report (``--crewguard-baseline``, ``crewguard compare``).

Modelled on pytest-benchmark's ``--benchmark-compare-fail=mean:5%``:
``--crewguard-compare-fail=cost:10%,tokens:10%,llm_calls:0`` fails the run when a test (or the
total) grew by more than 10% in cost or tokens, or made any more LLM calls than before. A limit
without ``%`` is an absolute amount (``cost:0.01``: at most one cent more).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .money import usd

METRICS: tuple[str, ...] = (
    "cost", "tokens", "input_tokens", "output_tokens", "llm_calls", "projected_s", "max_iter_hits",
    "max_iterations", "failed_gates", "tool_calls",
)
# Shorter names a rule may use.
ALIASES = {"time": "projected_s", "iterations": "max_iterations"}
# What the comparison shows for each test, in this order.
SHOWN: tuple[str, ...] = ("cost", "tokens", "llm_calls", "max_iterations", "max_iter_hits", "projected_s")
EXAMPLE = "e.g. cost:10%,tokens:10%,llm_calls:0,time:20%,max_iter_hits:0,failed_gates:0 or cost:0.01"
TOTAL = "TOTAL"


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


def parse_compare_fail(text: str, source: str = "--crewguard-compare-fail") -> list[Threshold]:
    """``"cost:10%,llm_calls:0"`` -> thresholds; a malformed one raises ``ConfigError``."""
    thresholds = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, amount = part.partition(":")
        metric = ALIASES.get(name.strip(), name.strip())
        amount = amount.strip()
        problem = None
        if not sep:
            problem = "expected metric:limit"
        elif metric not in METRICS:
            problem = f"unknown metric {name!r} (one of {', '.join([*METRICS, *ALIASES])})"
        relative = amount.endswith("%")
        try:
            limit = float(amount[:-1] if relative else amount)
        except ValueError:
            limit = -1.0
        if problem is None and not 0 <= limit < float("inf"):
            problem = f"limit {amount!r} is not a number >= 0 (or a percentage like 10%)"
        if problem:
            raise ConfigError(f"{source}={text!r}: {part!r}: {problem}; {EXAMPLE}")
        thresholds.append(Threshold(metric, limit / 100 if relative else limit, relative))
    if not thresholds:  # " " or "," would otherwise turn every rule off without a word
        raise ConfigError(f"{source}={text!r}: no rule in it; {EXAMPLE}")
    return thresholds


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier ``--crewguard-report`` (versioned or not); else ``ConfigError``."""
    from .report_file import load_report

    try:
        return load_report(path, f"--crewguard-baseline={path}")
    except FileNotFoundError:
        raise ConfigError(f"--crewguard-baseline={path}: no such file") from None


def _entries(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = dict(report.get("tests", {}))
    entries[TOTAL] = report.get("totals", {})
    return entries


def _number(entry: dict[str, Any], metric: str) -> float | None:
    """The entry's value; ``None`` when unknown (see :func:`_unknown`) or not in the report (a
    baseline written before the metric was)."""
    if metric not in entry or _unknown(entry, metric):
        return None
    value = entry[metric]
    if metric == "failed_gates":  # gates a test failed: failed_gates:0 catches an output gone invalid
        return float(len(value)) if isinstance(value, list) else 0.0
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _unknown(entry: dict[str, Any], metric: str) -> str | None:
    """Why the entry's ``metric`` is not a number to compare: a cost or token count that covers
    only the calls crewguard could read and price is a floor, not the amount."""
    if metric == "cost" and entry.get("cost_exact") is False:
        unpriced = entry.get("unpriced_models") or []
        if unpriced:
            return f"unknown: no price for {', '.join(map(str, unpriced))}"
        return "unknown: calls without usage"
    if metric in _TOKEN_METRICS and entry.get("usage_unknown"):
        return f"unknown: {entry['usage_unknown']} calls without usage"
    if metric == "projected_s" and entry.get(metric, 0) is None:
        return "unknown: no recorded latencies"
    return None


_TOKEN_METRICS = ("tokens", "input_tokens", "output_tokens")


def _fmt(metric: str, value: float) -> str:
    if metric == "cost":
        return usd(value)
    return f"{value:.2f}s" if metric == "projected_s" else f"{value:g}"


def _change(old: float, new: float) -> str:
    if old == 0:
        return "new" if new else "no change"
    return f"{(new - old) / old * 100:+.1f}%"


def _verdict(entry: dict[str, Any]) -> str:
    return str(entry.get("verdict") or entry.get("outcome") or "passed")


@dataclass
class Comparison:
    """What changed between two reports, per test and for the total."""

    regressions: list[str] = field(default_factory=list)  # past a threshold: these fail
    worse: list[str] = field(default_factory=list)  # grew, within the thresholds
    better: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)  # passed -> FAILED output, and back
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    uncompared: list[str] = field(default_factory=list)  # unknown on one side: neither better nor worse

    def lines(self) -> list[str]:
        """Every change, for a terminal: new and removed tests, verdicts, growths, improvements."""
        return [
            *(f"{name}: new since the baseline" for name in self.new),
            *(f"{name}: removed since the baseline" for name in self.removed),
            *self.verdicts,
            *self.uncompared,
            *self.worse,
            *(f"{line} (better)" for line in self.better),
        ]


def compare(baseline: dict[str, Any], current: dict[str, Any], thresholds: list[Threshold] | None = None
            ) -> Comparison:
    """Compare two reports (dicts as written by ``--crewguard-report``) test by test."""
    result = Comparison()
    before_all, after_all = _entries(baseline), _entries(current)
    result.removed = [name for name in before_all if name not in after_all]
    for name, after in after_all.items():
        before = before_all.get(name)
        if before is None:
            result.new.append(name)
            continue
        if name != TOTAL and _verdict(before) != _verdict(after):
            result.verdicts.append(f"{name}: verdict {_verdict(before)} -> {_verdict(after)}")
        _compare_entry(result, name, before, after, thresholds or [])
    return result


def _compare_entry(result: Comparison, name: str, before: dict[str, Any], after: dict[str, Any],
                   thresholds: list[Threshold]) -> None:
    for threshold in thresholds:
        metric = threshold.metric
        old, new = _number(before, metric), _number(after, metric)
        if old is not None and new is not None:
            if threshold.exceeded(old, new):
                result.regressions.append(
                    f"{name}: {metric} {_fmt(metric, old)} -> {_fmt(metric, new)} "
                    f"({_change(old, new)}; allowed {threshold})"
                )
        elif metric != "projected_s" and _unknown(after, metric):
            # A rule on an amount this run could not count must not pass on what it did count.
            result.regressions.append(
                f"{name}: {metric} {_unknown(after, metric)} in this run, so it cannot be held to "
                f"{threshold}; make every call's usage readable and every model priced (--crewguard-prices)"
            )
    grew: list[str] = []
    shrank: list[str] = []
    for metric in SHOWN:
        old, new = _number(before, metric), _number(after, metric)
        if old is None or new is None:
            earlier = _unknown(before, metric)
            why = _unknown(after, metric) or (earlier and f"{earlier} in the baseline")
            if why and metric != "projected_s" and metric in before and metric in after:
                result.uncompared.append(f"{name}: {metric} not compared ({why})")
            continue
        # Projected time carries this machine's own overhead: under 10% it is noise, not news.
        noise = max(0.005, 0.1 * old) if metric == "projected_s" else 1e-12
        if abs(new - old) < noise:
            continue
        text = f"{metric} {_fmt(metric, old)} -> {_fmt(metric, new)} ({_change(old, new)})"
        (grew if new > old else shrank).append(text)
    if grew:
        result.worse.append(f"{name}: " + ", ".join(grew))
    if shrank:
        result.better.append(f"{name}: " + ", ".join(shrank))


def regressions(baseline: dict[str, Any], current: dict[str, Any], thresholds: list[Threshold]) -> list[str]:
    """One line per test (and the total) that grew past a threshold."""
    return compare(baseline, current, thresholds).regressions


def comparison_lines(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Per-test changes since the baseline: new and removed tests, verdicts, growths, improvements."""
    return compare(baseline, current).lines()


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
