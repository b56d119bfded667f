"""Saved JSON reports as the subcommands read them: a missing file is a usage error (exit 2),
a file that is not a crewguard report is bad data (exit 1)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..baseline import Threshold, parse_compare_fail
from ..errors import ConfigError
from ..money import MAX_BUDGET
from .recorded import CommandError

FAIL_HELP = (
    "regressions that fail (exit 1): metric:limit, comma-separated; a limit with %% is relative, "
    "without it absolute. Metrics: cost, tokens, input_tokens, output_tokens, llm_calls, "
    "time (projected_s), max_iter_hits, iterations (max_iterations), failed_gates, tool_calls; "
    "e.g. cost:10%%,llm_calls:0,failed_gates:0"
)


def read_report(path: str) -> dict[str, Any]:
    """The report at ``path``, checked against the schema (unversioned reports accepted)."""
    from ..report_file import load_report

    try:
        return load_report(Path(path))
    except FileNotFoundError:
        raise CommandError(f"no report at {path}: check the path (pytest --crewguard-report=PATH writes one)",
                           2) from None
    except ConfigError as err:
        raise CommandError(str(err), 1) from None


def thresholds(text: str | None) -> list[Threshold]:
    """``--fail`` rules; a malformed one is a usage error."""
    if not text:
        return []
    try:
        return parse_compare_fail(text, "--fail")
    except ConfigError as err:
        raise CommandError(str(err), 2) from None


def budget(text: str | None) -> float | None:
    """``--max-cost`` in USD; anything but a finite amount >= 0 is a usage error."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_BUDGET:  # as the plugin's option
        raise CommandError(
            f"--max-cost={text[:40]!r}: expected a USD amount >= 0 and at most {MAX_BUDGET:g}, e.g. 0.50", 2
        )
    return value
