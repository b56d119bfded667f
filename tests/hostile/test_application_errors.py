"""Errors that reach the application or the provider: a replay miss the application swallows
(it must still fail the test, cleanly, and never hang a future), and provider error answers while
recording (never written as if they were the crew's behaviour)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import answer, crew_test_file

BODY = """
@pytest.mark.crewguard(MARKER)
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI agents"})
"""


def _test_file(base_url: str, marker: str = "") -> str:
    return crew_test_file(base_url, BODY.replace("MARKER", marker))


APPLICATION = """
import threading

jobs = {}

def run_job(topic):
    try:
        jobs[topic] = str(make_crew().kickoff(inputs={"topic": topic}))
    except Exception as err:  # the application's own handler, as in production
        jobs[topic] = f"failed: {type(err).__name__}"

@pytest.mark.crewguard
def test_endpoint():
    worker = threading.Thread(target=run_job, args=("AI agents",))
    worker.start()
    worker.join(timeout=60)
    assert not jobs["AI agents"].startswith("failed"), jobs

@pytest.mark.crewguard
def test_async_task(crewguard):
    crew = make_crew()
    crew.tasks[0].async_execution = True
    crew.tasks.append(Task(name="summary", description="Summarise", expected_output="Text",
                           agent=crew.agents[0], context=[crew.tasks[0]]))
    crewguard.kickoff(lambda: crew, inputs={"topic": "AI agents"})

@pytest.mark.crewguard
def test_skipped_inside(crewguard):
    pytest.skip("not today")
"""


def test_a_miss_reaches_the_application_as_an_error_and_the_test_fails_cleanly(
    pytester: pytest.Pytester, provider
) -> None:
    server = provider([answer("Agents act.")] * 4)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, APPLICATION))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=2, skipped=1)
    served = len(server.requests)
    # The prompt changes: every LLM request of both tests is now a miss.
    pytester.makepyfile(
        test_crew=crew_test_file(server.openai_base_url, APPLICATION).replace(
            "Research {topic}", "Investigate {topic}"
        )
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2, skipped=1)
    out = result.stdout.str()
    # The application caught the SDK's ordinary exception and went on; the test then failed in
    # its own way, and crewguard's message comes first, without the application's traceback.
    result.stdout.fnmatch_lines(
        [
            "*_ test_endpoint _*",
            "crewguard: no recorded response for POST http://127.0.0.1:*/v1/chat/completions",
            "*-messages?1?.content: Current Task: Research AI agents and summarise it",
            "*(the test then failed with AssertionError: *failed: BadRequestError*",
        ]
    )
    assert "Traceback" not in out and "threading.py" not in out
    # The async_execution task's future was set: the test failed instead of hanging.
    result.stdout.fnmatch_lines(["*test_async_task*FAILED cassette_miss*", "*test_skipped_inside*SKIPPED*"])
    result.stdout.fnmatch_lines(["*test_endpoint*FAILED cassette_miss*"])
    assert len(server.requests) == served  # nothing reached the provider in replay


def test_error_answers_are_not_recorded_unless_asked(pytester: pytest.Pytester, provider) -> None:
    from pytest_crewguard.testing.scripted_provider import Reply

    server = provider([Reply(text="invalid api key", status=401)] * 8)
    pytester.makepyfile(test_crew=_test_file(server.openai_base_url))
    result = pytester.runpytest("--crewguard-record-mode=once")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the provider answered POST http://127.0.0.1:*/v1/chat/completions with HTTP 401*",
            "*was not written*",
            "*FAILED provider_error*",
        ]
    )
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    assert not cassette.exists()
    pytester.makepyfile(test_crew=_test_file(server.openai_base_url, "record_errors=True"))
    pytester.runpytest("--crewguard-record-mode=once")
    assert "invalid api key" in cassette.read_text()


