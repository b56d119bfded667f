"""Saved reports that are missing, not JSON, not reports or broken: one line and an exit code
(2 usage or missing file, 1 bad data), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_crewguard.cli import main

from ..ci_reports import record, report


@pytest.fixture
def good(tmp_path: Path) -> str:
    path = tmp_path / "good.json"
    path.write_text(json.dumps(report(record("t.py::a"))))
    return str(path)


@pytest.mark.parametrize("command", [["report"], ["compare", "GOOD"], ["merge", "GOOD", "-o", "out.json"],
                                     ["check"]])
def test_a_missing_report_is_a_usage_error(command: list[str], good: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = [good if a == "GOOD" else a for a in command]
    argv.insert(1 if command[0] != "merge" else 2, str(tmp_path / "nowhere.json"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crewguard: no report at ") and "nowhere.json" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00binary", "cannot read it"),
        (b"[1, 2]", "not a crewguard report"),
        (b'{"tests": [], "totals": {}}', "not a crewguard report"),
        (b'{"schema": "crewguard-report/1", "tests": {}, "totals": {}}', "not a valid crewguard-report/1"),
        (b'{"schema": "crewguard-report/9", "tests": {}, "totals": {}}', "upgrade pytest-crewguard"),
        # Unversioned (older) reports may lack fields, not have wrong ones.
        (b'{"tests": {"t::a": {"cost": "lots"}}, "totals": {}}', "tests/t::a/cost: 'lots' is not of type"),
        (b'{"tests": {"t::a": []}, "totals": {}}', "tests/t::a: [] is not of type 'object'"),
    ],
)
def test_a_malformed_report_is_a_data_error(content: bytes, problem: str, tmp_path: Path, good: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    for argv in (["report", str(bad)], ["compare", good, str(bad)], ["check", str(bad)],
                 ["merge", good, str(bad), "-o", str(tmp_path / "m.json")]):
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert problem in err and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(("argv", "problem"), [
    (["check", "GOOD", "--max-cost", "nan"], "--max-cost='nan': expected a USD amount"),
    (["check", "GOOD", "--max-cost", "-1"], "--max-cost='-1'"),
    (["check", "GOOD", "--fail", "cost:10%"], "--fail needs --baseline"),
    (["compare", "GOOD", "GOOD", "--fail", "cost:lots"], "'cost:lots': limit 'lots' is not a number"),
    (["merge", "GOOD"], "the following arguments are required: -o/--output"),
])
def test_bad_arguments_are_usage_errors(argv: list[str], problem: str, good: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main([good if a == "GOOD" else a for a in argv]) == 2
    assert problem in capsys.readouterr().err


def test_a_report_that_failed_a_gate_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report(record("t.py::a", failed_gates=["output"], outcome="failed"))))
    assert main(["check", str(path)]) == 1
    assert "crewguard: 1 guarded test(s) failed: t.py::a" in capsys.readouterr().out


def test_an_over_budget_report_prints_its_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(report(record("t.py::a", cost=0.02), budget=0.01)))
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "t.py::a" in out and "session budget: $0.020000 of $0.010000 (OVER by $0.010000)" in out
    assert main(["report", "--markdown", str(path)]) == 0
    assert capsys.readouterr().out.startswith("## crewguard\n\n| test")
