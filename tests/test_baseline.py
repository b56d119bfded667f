"""Comparing a run with an earlier JSON report, like pytest-benchmark's compare-fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_crewguard.baseline import Threshold, parse_compare_fail
from pytest_crewguard.errors import ConfigError

from .conftest import answer, crew_test_file

BODY = """
@pytest.mark.crewguard
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI agents"})
"""


def test_parse_compare_fail():
    assert parse_compare_fail("cost:10%,tokens:5%,llm_calls:0") == [
        Threshold("cost", 0.1, True),
        Threshold("tokens", 0.05, True),
        Threshold("llm_calls", 0.0, False),
    ]


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("cost", "expected metric:limit"),
        ("price:10%", "unknown metric 'price'"),
        ("cost:-5%", "not a number >= 0"),
    ],
)
def test_malformed_compare_fail_names_the_part(spec, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_compare_fail(spec)


def _report(pytester: pytest.Pytester, provider, tokens: int, name: str) -> Path:
    server = provider([answer("summary", input_tokens=tokens, output_tokens=100)])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest(
        "-p", "no:warnings", "--crewguard-record-mode=rewrite", f"--crewguard-report={name}"
    ).assert_outcomes(passed=1)
    server.stop()
    return Path(pytester.path) / name


def test_a_regression_against_the_baseline_fails_the_run(pytester, provider):
    _report(pytester, provider, tokens=1000, name="baseline.json")
    _report(pytester, provider, tokens=1500, name="now.json")  # the prompt grew by half
    result = pytester.runpytest(
        "-p",
        "no:warnings",
        "--crewguard-baseline=baseline.json",
        "--crewguard-compare-fail=tokens:10%,llm_calls:0",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*changes since the baseline:*",
            "*regression: test_crew.py::test_research: tokens 1100 -> 1600 (+45.5%; allowed tokens:10%)*",
        ]
    )
    assert "llm_calls 1 -> " not in result.stdout.str()
    relaxed = pytester.runpytest(
        "-p", "no:warnings", "--crewguard-baseline=baseline.json", "--crewguard-compare-fail=tokens:50%"
    )
    assert relaxed.ret == pytest.ExitCode.OK
    assert json.loads((Path(pytester.path) / "now.json").read_text())["totals"]["tokens"] == 1600


def test_compare_fail_without_a_baseline_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--crewguard-compare-fail=cost:10%")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--crewguard-compare-fail needs --crewguard-baseline=PATH*"])


def test_a_baseline_that_is_not_a_report_is_a_usage_error(pytester):
    pytester.makepyfile("def test_x():\n    pass\n")
    pytester.path.joinpath("old.json").write_text('{"benchmarks": []}')
    result = pytester.runpytest("--crewguard-baseline=old.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*old.json: not a crewguard report*"])


@pytest.mark.parametrize("option", ["--crewguard-report", "--crewguard-html", "--crewguard-markdown"])
def test_an_output_path_that_cannot_be_written_is_a_usage_error_before_the_run(pytester, option):
    pytester.makepyfile("def test_x():\n    pass\n")
    pytester.mkdir("reports")
    pytester.path.joinpath("file").write_text("")
    for value, problem in (("reports", "is a directory"), ("file/r.json", "(Not a directory)")):
        result = pytester.runpytest(f"{option}={value}")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        expected = f"*{option}='{value}': *{problem}; give a file path that can be written"
        result.stderr.fnmatch_lines([expected])


def test_a_report_that_cannot_be_written_at_the_end_fails_the_run_and_keeps_the_rest(pytester, provider):
    _report(pytester, provider, tokens=1000, name="first.json")
    # The path is taken by a directory while the tests run: found only when writing.
    pytester.makepyfile(test_later="import os\n\ndef test_takes_the_path():\n    os.mkdir('now.json')\n")
    result = pytester.runpytest(
        "-p", "no:warnings", "--crewguard-report=now.json", "--crewguard-markdown=now.md"
    )
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*crewguard*", "*test_crew.py::test_research*passed*",
        "crewguard: could not write --crewguard-report=*now.json: *a directory, not replaced*",
        "*2 passed*",
    ])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "test_crew.py::test_research" in (Path(pytester.path) / "now.md").read_text()  # the others written
