"""Failure text that reads cleanly: missing and empty cassettes, the budget line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import answer, crew_test_file

TESTS = """
@pytest.mark.crewguard
def test_recorded(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})

@pytest.mark.crewguard
def test_never_recorded(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})

@pytest.mark.crewguard
def test_empty(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
"""


def test_missing_and_empty_cassettes_say_which_and_how_to_record(pytester: pytest.Pytester, provider) -> None:
    server = provider([answer("Agents act.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, TESTS))
    pytester.runpytest("--crewguard-record-mode=once", "-k", "test_recorded").assert_outcomes(passed=1)
    server.stop()
    empty = Path(pytester.path) / "cassettes" / "test_crew" / "test_empty.yaml"
    empty.write_text("interactions: []\nversion: 1\n")

    result = pytester.runpytest("--crewguard-max-cost=0.0000001")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    # Once per test, no repeats (under CI=true pytest repeats whole messages in its short summary).
    failures = out.split("short test summary info")[0]
    assert failures.count("Record it (this calls the real provider):") == 2
    result.stdout.fnmatch_lines(
        [
            "*The cassette does not exist yet, and replay mode never calls the network.*",
            "*pytest 'test_crew.py::test_never_recorded' --crewguard-record-mode=once",
        ]
    )
    # `once` would replay the empty file and fail the same way: the advice is to rewrite it.
    result.stdout.fnmatch_lines(
        [
            "*The cassette has no interactions, and replay mode never calls the network.*",
            "*pytest 'test_crew.py::test_empty' --crewguard-record-mode=rewrite",
        ]
    )
    # Tests failed too, so the budget line does not claim they passed.
    result.stdout.fnmatch_lines(["*is over --crewguard-max-cost=$0.000000 by $0.000360; failing the run."])
    assert "even though the tests passed" not in out


def test_crewais_own_error_logs_stay_out_of_the_failure_text(pytester: pytest.Pytester, provider) -> None:
    from ..test_output_schema import failure_of, record_and_replay

    replayed = record_and_replay(pytester, provider, {"test_crewai_rejects": "failed"})
    failure = failure_of(replayed, "test_crewai_rejects")
    assert failure.startswith("crewguard: CrewAI could not build ResearchOutput")
    # CrewAI logs errors and prints event-bus warnings while it retries: captured, not in the failure.
    assert "ERROR" not in failure and "[CrewAIEventsBus]" not in failure and "Traceback" not in failure
    reports = replayed.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    (call,) = [r for r in reports if r.when == "call"]
    assert any(title.startswith("Captured") for title, _ in call.sections)
