"""pytest plugin of the CrewAI suite benchmark: write every test's outcome to a JSON-lines file.

Loaded with ``-p suite_outcomes --suite-outcomes=PATH`` in every run, so the runs are compared
by node id (junit XML loses the parametrize ids' exact form). One line is appended when a test's
teardown ends, so a run that dies half-way still leaves the outcomes of the tests it finished.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

_results: dict[str, dict[str, Any]] = {}
_HEAD, _TAIL = 12000, 4000  # a failure's text kept: its start (crewguard's diff) and its end


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("crewai-suite").addoption("--suite-outcomes", default=None, help="write outcomes here")


def _first_line(text: str) -> str:
    """The line that says what went wrong: the first ``E`` line of the last exception shown
    (pytest prints chained exceptions first), else a crewguard or timeout line, else the last line."""
    lines = [line for line in text.splitlines() if line.strip()]
    starts = [
        i
        for i, line in enumerate(lines)
        if line.startswith("E ") and (i == 0 or not lines[i - 1].startswith("E "))
    ]
    if starts:
        return re.sub(r"^E\s+", "", lines[starts[-1]])[:300]
    for line in lines:
        if line.startswith("crewguard:") or "Failed: Timeout" in line:
            return line[:300]
    return (lines[-1] if lines else "")[:300]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Any:
    # What pytest-recording's cassette played for this test: the requests the test really made
    # (a test that mocks Task.execute_sync makes none, whatever its cassette holds).
    cassette = getattr(item, "funcargs", {}).get("vcr")
    counts = getattr(cassette, "play_counts", None)
    if counts is not None:
        requests = cassette.requests
        played = [
            f"{requests[i].method} {requests[i].host}{requests[i].path}"
            for i, n in sorted(counts.items())
            for _ in range(n)
            if i < len(requests)
        ]
        _results.setdefault(item.nodeid, {"outcome": "passed", "duration": 0.0, "first_line": ""})[
            "played"
        ] = played
    return (yield)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _results.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0, "first_line": ""})
    entry["duration"] += report.duration
    if report.when == "call" and hasattr(report, "wasxfail"):
        entry["outcome"] = "xfailed" if report.skipped else "xpassed"
        return
    if report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        entry["first_line"] = str(reason)[:300]
    elif report.failed:
        text = report.longreprtext or ""
        if entry["outcome"] in ("passed", "skipped"):
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["first_line"] = _first_line(text)
            entry["when"] = report.when
            entry["text"] = text if len(text) <= _HEAD + _TAIL else f"{text[:_HEAD]}\n...\n{text[-_TAIL:]}"
        else:  # a teardown error after a failure: keep the first, note the second
            entry.setdefault("also", []).append(f"{report.when}: {_first_line(text)}")
    if report.when == "teardown" and _path is not None:
        with _path.open("a") as out:
            out.write(json.dumps({"nodeid": report.nodeid, **_results.pop(report.nodeid)}) + "\n")


_path: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _path
    path = config.getoption("--suite-outcomes")
    _path = Path(path) if path else None
