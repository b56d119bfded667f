"""The CI surface end to end on the example suite: its JSON report, Markdown summary, step
summary and JUnit properties, and the same suite run as two shards, merged and checked."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.cli import main
from pytest_crewguard.money import usd
from pytest_crewguard.report_file import schema_errors

from .conftest import ExampleRun, finished, run_example

ROOT = Path(__file__).parent.parent
SHARD = "brief_per_topic"  # -k splits the example suite in two: 3 tests and 4


@pytest.fixture(scope="module")
def whole(example_run: ExampleRun) -> tuple[Path, dict[str, Any], str]:
    return example_run.folder, example_run.report, example_run.stdout


def test_report_validates_and_its_totals_are_the_table_s(whole: tuple[Path, dict[str, Any], str]) -> None:
    _, data, out = whole
    assert schema_errors(data) == []
    assert data["schema"] == "crewguard-report/1" and len(data["tests"]) == 7
    total = re.search(r"^TOTAL \(7 tests\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\$[\d.]+)", out, re.M)
    assert total is not None, out
    totals = data["totals"]
    assert total.groups() == (str(totals["llm_calls"]), str(totals["input_tokens"]),
                              str(totals["output_tokens"]), usd(totals["cost"]))
    entry = data["tests"]["fixtures/example/test_research_crew.py::test_crew_in_budget_with_typed_output"]
    assert entry["limits"] == {"max_cost": 0.01, "max_iterations": 4, "output": "ResearchOutput"}
    assert entry["cassette"].startswith("cassettes/fixtures/example/")
    assert {i["agent"] for i in entry["iterations"]} == {"Researcher", "Writer"}


def test_markdown_goes_to_the_file_and_the_step_summary(whole: tuple[Path, dict[str, Any], str]) -> None:
    tmp, data, _ = whole
    text = (tmp / "crewguard.md").read_text()
    assert text.startswith("## crewguard\n\n| test ")
    assert "| **TOTAL (7 tests)** " in text and usd(data["totals"]["cost"]) in text
    assert (tmp / "summary.md").read_text() == "## tests\n" + text + "\n"  # appended, not replaced


def test_junit_testcases_carry_the_numbers(whole: tuple[Path, dict[str, Any], str]) -> None:
    tmp, data, _ = whole
    cases = ET.parse(tmp / "junit.xml").getroot().iter("testcase")
    found = {}
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        found[case.get("name")] = props
    assert len(found) == 7
    entry = data["tests"]["fixtures/example/test_research_crew.py::test_usage_in_bounds"]
    props = found["test_usage_in_bounds"]
    assert props["crewguard_cost_usd"] == f"{entry['cost']:.6f}"
    assert props["crewguard_tokens"] == str(entry["tokens"])
    assert props["crewguard_llm_calls"] == "3"
    assert props["crewguard_max_iter_hits"] == "0"
    assert float(props["crewguard_projected_s"]) == pytest.approx(entry["projected_s"], abs=1e-3)


def test_shards_merged_and_checked_equal_the_whole(whole: tuple[Path, dict[str, Any], str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, data, _ = whole
    # The two shards run side by side, as two CI jobs would.
    shards = [
        run_example(tmp_path, f"--crewguard-report={tmp_path / 'one.json'}", "-k", SHARD),
        run_example(tmp_path, f"--crewguard-report={tmp_path / 'two.json'}", "-k", f"not {SHARD}"),
    ]
    for shard in shards:
        finished(shard)
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert len(one["tests"]) == 3 and len(two["tests"]) == 4
    merged = tmp_path / "all.json"
    assert main(["merge", str(tmp_path / "one.json"), str(tmp_path / "two.json"), "-o", str(merged)]) == 0
    result = json.loads(merged.read_text())
    assert schema_errors(result) == []
    for key in ("llm_calls", "input_tokens", "output_tokens", "tokens", "tests", "max_iter_hits"):
        assert result["totals"][key] == data["totals"][key], key
    assert usd(result["totals"]["cost"]) == usd(data["totals"]["cost"])
    assert result["totals"]["cost"] == pytest.approx(data["totals"]["cost"], abs=1e-9)

    total = one["totals"]["cost"] + two["totals"]["cost"]
    capsys.readouterr()
    assert main(["check", str(merged), "--max-cost", f"{total * 0.9:.6f}"]) == 1
    out = capsys.readouterr().out
    assert (f"crewguard: session cost {usd(result['totals']['cost'])} is over --max-cost="
            f"{usd(float(f'{total * 0.9:.6f}'))}") in out
    assert "failing the run even though the tests passed." in out
    assert main(["check", str(merged), "--max-cost", f"{total * 1.1:.6f}"]) == 0
    assert "is over --max-cost" not in capsys.readouterr().out
