"""The HTML report: written by a real run of the example suite, opened in a headless Chromium.

The browser checks are what a reader relies on: the page renders without a console error (no
script error, nothing refused by its no-network policy), its totals are the JSON report's, and
each test shows its runs' tasks, tool calls and LLM calls with their messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.money import usd

from .conftest import ExampleRun

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium to open the HTML report in: install it (apt-get install chromium; .ci/run does)")


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _console_errors(stderr: str) -> list[str]:
    """Console messages and uncaught errors Chromium logged for the page (with --enable-logging)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


class _Page(HTMLParser):
    """What the tests read from the dumped DOM: the totals row, rows, sections and calls."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[str, str] = {}
        self.total_cells: list[str] = []
        self.sections = 0
        self.calls = 0
        self.tasks: list[str] = []
        self.tools: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []
        self._in_total = False
        self._in_cell = False
        self._label: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "tr" and found.get("id") == "totals":
            self._in_total = True
            self.totals = {k[5:]: v or "" for k, v in found.items() if k.startswith("data-")}
        elif tag == "td" and self._in_total:
            self._in_cell = True
            self.total_cells.append("")
        elif tag == "section" and "test" in classes:
            self.sections += 1
        elif tag == "details" and "call" in classes:
            self.calls += 1
        elif tag == "div" and ("task" in classes or "tool" in classes):
            self._label = classes[1]
        for name in ("src", "href"):
            value = found.get(name) or ""
            if value and not value.startswith("#"):
                self.external.append(value)
        if tag in ("script", "link", "img", "iframe", "object"):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._in_total = False
        if tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_cell:
            self.total_cells[-1] += data
        if self._label is not None and data.strip():
            (self.tasks if self._label == "task" else self.tools).append(data.strip())
            self._label = None


@pytest.fixture(scope="module")
def example_report(example_run: ExampleRun) -> tuple[Path, dict[str, Any]]:
    """The example suite replayed once, with its HTML and JSON reports."""
    return example_run.html, example_run.report


def test_the_example_report_renders_with_the_json_totals(
    example_report: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    browser = _browser()
    html, report = example_report
    dumped = _chromium(browser, tmp_path / "profile", "--dump-dom", html.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert _console_errors(dumped.stderr) == []
    page = _Page()
    page.feed(dumped.stdout)

    totals = report["totals"]
    assert page.external == []  # nothing to fetch: the file works offline, from an artifact
    assert {k: float(v) for k, v in page.totals.items() if k != "cost-exact"} == {
        k.replace("_", "-"): float(v) for k, v in totals.items()
        if k != "cost_exact" and isinstance(v, (int, float))
    }
    # The visible cells are the terminal's: calls, tokens and cost as the table prints them.
    assert page.total_cells[:5] == [
        f"TOTAL ({totals['tests']} tests)",
        str(totals["llm_calls"]),
        str(totals["input_tokens"]),
        str(totals["output_tokens"]),
        usd(totals["cost"]),
    ]
    assert page.sections == totals["tests"] == len(report["tests"])
    assert not any("timeline" in test for test in report["tests"].values())  # the JSON is as it was
    assert page.calls == totals["llm_calls"]  # every LLM call has its row, which opens
    # Each run shows its tasks with their agents and the tool call between the LLM calls.
    assert page.tasks.count("task: research") == totals["tests"]
    assert page.tasks.count("task: write") == totals["tests"]
    assert any(t.startswith("tool: search_notes(") for t in page.tools)
    # The calls open to their messages: the prompt CrewAI sent and the answer the model gave.
    text = "".join(page.text)
    for shown in ("You are Researcher.", "Current Task: Research AI agents", "Notes on ai agents:"):
        assert shown in text, shown


def test_the_report_screenshot(example_report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """A picture of the report, as the README shows it (saved where $CREWGUARD_HTML_SCREENSHOT says)."""
    browser = _browser()
    html, _ = example_report
    shot = Path(os.environ.get("CREWGUARD_HTML_SCREENSHOT") or tmp_path / "html-report.png").resolve()
    shot.parent.mkdir(parents=True, exist_ok=True)
    result = _chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1000,1150",
                       html.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_console_error_is_seen(tmp_path: Path) -> None:
    """The check above can fail: a page whose script throws is caught by it."""
    browser = _browser()
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><p>x</p><script>throw new Error('broken page')</script>")
    result = _chromium(browser, tmp_path / "profile", "--dump-dom", page.as_uri())
    assert any("broken page" in line for line in _console_errors(result.stderr))


def test_the_ini_key_names_the_report(pytester: pytest.Pytester) -> None:
    from pytest_crewguard.options import settings_from_config

    pytester.makeini("[pytest]\ncrewguard_html = out/report.html\n")
    config = pytester.parseconfig()
    assert settings_from_config(config).html == Path(config.rootpath) / "out" / "report.html"
    config = pytester.parseconfig("--crewguard-html=other.html")
    assert settings_from_config(config).html == Path(config.rootpath) / "other.html"


LOOPING_CREW = """
@tool("lookup")
def lookup(q: str) -> str:
    '''Look something up.'''
    return "nothing useful"


@pytest.mark.crewguard
def test_loop(crewguard):
    crewguard.kickoff(lambda: make_crew(max_iter=2, tools=[lookup]), inputs={"topic": "AI agents"})
"""


def test_a_forced_final_answer_and_its_failed_gate_stand_out(
    pytester: pytest.Pytester, provider: Any
) -> None:
    """A real crew that hits max_iter: its forced call is marked and open, the gate named."""
    from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

    from .conftest import crew_test_file

    def keeps_calling_the_tool(req: ReceivedRequest) -> Reply:
        return Reply.tool("lookup", q="x") if req.body.get("tools") else Reply(text="best answer")

    server = provider(keeps_calling_the_tool)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, LOOPING_CREW))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(failed=1)
    server.stop()
    pytester.runpytest("--crewguard-html=report.html").assert_outcomes(failed=1)

    page = (Path(pytester.path) / "report.html").read_text()
    assert page.count('<details class="call">') == 2  # the two rounds that called the tool
    assert page.count('<details class="call forced" open>') == 1
    assert "FORCED FINAL ANSWER" in page and "failed gates: max_iter" in page
    assert page.count('">tool: lookup(') == 2  # the label, not its title
    assert '<section class="test failed"' in page
    forced = page.split('<details class="call forced" open>')[1].split("</details>")[0]
    assert "best answer" in forced  # the answer the model gave when told to stop
