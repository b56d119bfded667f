"""Crews that never return: the test fails at ``max_seconds`` and the session still ends.

A tool stuck in C code (a lock wait, a sleep) cannot be interrupted from Python, and CrewAI runs
an agent's rounds on asyncio worker threads, which are not daemon threads: left alone, such a
thread keeps the pytest process alive after its summary, for ever. These tests run the real
thing: a pytest process whose crew is stuck for good must still end with its normal status.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from ..conftest import crew_test_file, recorded_then_replayed
from ..test_iterations import outcomes

STUCK_TOOLS = """
import threading, time


@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    threading.Event().wait()  # never returns: no timeout, not interruptible from Python
    return "never"


@tool("sleepy")
def sleepy(q: str) -> str:
    \"\"\"Look something up slowly.\"\"\"
    time.sleep(3600)
    return "too late"


@pytest.mark.crewguard(max_seconds=2)
def test_blocked(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "stuck things"})


@pytest.mark.crewguard(max_seconds=2)
def test_blocked_async(crewguard):
    import asyncio

    asyncio.run(crewguard.kickoff_async(lambda: make_crew(tools=[sleepy]), inputs={"topic": "stuck things"}))


@pytest.mark.crewguard
def test_next(crewguard):
    run = crewguard.kickoff(make_crew, inputs={"topic": "quick things"})
    assert run.output.raw == "quick answer"
"""


def tool_round_then_answer(req: ReceivedRequest) -> Reply:
    if "quick things" in req.prompt_text:
        return Reply(text="quick answer")
    tools = req.body.get("tools") or []
    if tools and not any(m.get("role") == "tool" for m in req.body.get("messages", [])):
        return Reply.tool(tools[0]["function"]["name"], q="x")
    return Reply(text="done")


def test_a_session_whose_tool_blocks_forever_ends_with_its_own_status(
    pytester: pytest.Pytester, provider: Any
) -> None:
    server = provider(tool_round_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, STUCK_TOOLS))
    report = Path(pytester.path) / "report.json"
    # Generous: the process must end, not end fast (it never ended before).
    result = pytester.runpytest_subprocess(
        "--crewguard-record-mode=once", f"--crewguard-report={report}", "-p", "no:warnings", timeout=150
    )
    result.assert_outcomes(failed=2, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*_ test_blocked _*",
            "crewguard: the crew ran past max_seconds=2 (stopped waiting after * s)*",
            "*_ test_blocked_async _*",
            "crewguard: the crew ran past max_seconds=2 (stopped waiting after * s)*",
            "*= 2 failed, 1 passed in *",
            "crewguard: * thread* of crews crewguard stopped waiting for * still running*",
            "*test_crew.py::test_blocked*",
        ]
    )
    # The report was written before the process ended.
    tests = json.loads(report.read_text())["tests"]
    verdicts = {nodeid.split("::")[-1]: r["verdict"] for nodeid, r in tests.items()}
    assert verdicts["test_blocked"].startswith("FAILED max_seconds"), verdicts
    assert verdicts["test_next"] == "passed"


ASYNC_RELEASED = """
import os, select


@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    # Blocks in C until the outer test writes to the pipe (60 s at most).
    select.select([{release}], [], [], 60)
    os.close({release})
    return "too late"


@pytest.mark.crewguard(max_seconds=1)
def test_blocked_async(crewguard):
    import asyncio

    asyncio.run(crewguard.kickoff_async(lambda: make_crew(tools=[lookup]), inputs={"topic": "stuck things"}))
"""


def test_kickoff_async_stops_waiting_at_max_seconds(pytester: pytest.Pytester, provider: Any) -> None:
    server = provider(tool_round_then_answer)
    # The tool runs in this process: it waits on a pipe that is written once the inner session
    # is over, so no thread stays blocked here after the test.
    release, releaser = os.pipe()
    body = ASYNC_RELEASED.replace("{release}", str(release))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, body))
    try:
        result = pytester.runpytest("--crewguard-record-mode=once")
    finally:
        os.write(releaser, b"x")
        os.close(releaser)
    assert outcomes(result) == {"test_blocked_async": "failed"}
    result.stdout.fnmatch_lines(
        ["crewguard: the crew ran past max_seconds=1 (stopped waiting after * s)*"]
    )
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    (call,) = [r for r in reports if r.when == "call"]
    # The tool holds the crew until the inner session is over; the test took about max_seconds.
    assert call.duration < 20, f"the test took {call.duration:.1f} s under max_seconds=1"


LEFT_RUNNING = """
import threading, time


@tool("sleepy")
def sleepy(q: str) -> str:
    \"\"\"Look something up slowly.\"\"\"
    time.sleep(3600)
    return "too late"


def in_background(factory, topic):
    # The application answers at once and leaves the crew running (an endpoint's 202).
    threading.Thread(target=lambda: factory().kickoff(inputs={"topic": topic}), daemon=True).start()


@pytest.mark.crewguard
def test_fire_and_forget():
    in_background(make_crew, "quick things")


@pytest.mark.crewguard(max_seconds=1)
def test_left_stuck():
    in_background(lambda: make_crew(tools=[sleepy]), "stuck things")


@pytest.mark.crewguard
def test_next(crewguard):
    run = crewguard.kickoff(make_crew, inputs={"topic": "quick things"})
    assert run.output.raw == "quick answer" and run.llm_calls == 1
"""


def test_a_kickoff_left_running_is_waited_for_inside_the_cassette_or_stopped(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # Before, the first test passed with 0 calls while its crew went on after the cassette
    # closed: to the provider in replay, or into the next test's numbers; a stuck one kept the
    # process alive after the summary.
    server = provider(tool_round_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, LEFT_RUNNING))
    report = Path(pytester.path) / "report.json"
    for result in recorded_then_replayed(
        pytester, server, f"--crewguard-report={report}", "-p", "no:warnings", in_subprocess=True
    ):
        result.assert_outcomes(failed=1, passed=2)
        result.stdout.fnmatch_lines(
            [
                "*_ test_left_stuck _*",
                "crewguard: 1 crew kickoff(s) started in this test ('crew') were still running 1.?s "
                "after the test body returned; crewguard stopped them*",
                "*Wait for the kickoff before the test returns*",
            ]
        )
        tests = json.loads(report.read_text())["tests"]
        verdicts = {nodeid.split("::")[-1]: r["verdict"] for nodeid, r in tests.items()}
        assert verdicts == {"test_fire_and_forget": "passed", "test_left_stuck": "FAILED unfinished_kickoff",
                            "test_next": "passed"}, verdicts
        assert tests["test_crew.py::test_fire_and_forget"]["llm_calls"] == 1
        result.stdout.fnmatch_lines(["crewguard: 1 thread of crews crewguard stopped waiting for is still*"])


SKIPPED_INSIDE = """
@pytest.mark.crewguard
def test_skipped_in_a_callback(crewguard):
    crew = make_crew()
    crew.tasks[0].callback = lambda output: pytest.skip("not configured here")
    crew.kickoff(inputs={"topic": "quick things"})
"""


def test_a_kickoff_ended_by_a_skip_is_not_taken_for_one_still_running(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # pytest.skip inside the crew leaves its start event without an end event; no thread runs
    # it. It was waited for until max_seconds (10 s by default) and shown as unfinished_kickoff.
    server = provider(tool_round_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SKIPPED_INSIDE))
    for result in recorded_then_replayed(pytester, server):
        result.assert_outcomes(skipped=1)
        result.stdout.fnmatch_lines(["*test_crew.py::test_skipped_in_a_callback * SKIPPED*"])
        result.stdout.no_fnmatch_line("*unfinished_kickoff*")


ONE_STUCK = """
import threading


@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    threading.Event().wait()  # never returns
    return "never"


# First (xdist -n 1 runs in file order): it loads the SDK, which the stuck test's first call
# would otherwise load under its time limit.
@pytest.mark.crewguard
def test_next(crewguard):
    assert crewguard.kickoff(make_crew, inputs={"topic": "quick things"}).output.raw == "quick answer"


# Long enough for the crew to reach its tool on a loaded machine: stopped before it, the
# crew's thread ends with the cassette, and no thread is left to name.
@pytest.mark.crewguard(max_seconds=3)
def test_blocked(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "stuck things"})
"""


def test_an_xdist_worker_with_a_stuck_crew_ends_and_the_controller_names_the_thread(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # The worker waited for the thread at its exit until xdist killed it, and its "still
    # running" lines were never shown.
    server = provider(tool_round_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, ONE_STUCK))
    report = Path(pytester.path) / "report.json"
    for result in recorded_then_replayed(
        pytester, server, "-n", "1", f"--crewguard-report={report}", "-p", "no:warnings", in_subprocess=True
    ):
        result.assert_outcomes(failed=1, passed=1)
        result.stdout.fnmatch_lines(
            ["[[]gw0[]] crewguard: 1 thread of crews crewguard stopped waiting for is still running*",
             "[[]gw0[]]   asyncio_* (test_crew.py::test_blocked): test_crew.py:* in lookup"]
        )
        tests = json.loads(report.read_text())["tests"]
        verdicts = {nodeid.split("::")[-1]: test["verdict"] for nodeid, test in tests.items()}
        assert verdicts["test_next"] == "passed" and verdicts["test_blocked"].startswith("FAILED max_seconds")


SLOW_MODULE = """
import time

time.sleep(0.4)  # a module whose import takes a while, as an SDK's first import does
LOADED = True
"""


def test_a_thread_stopped_while_it_imports_stops_after_the_import(tmp_path: Path, monkeypatch: Any) -> None:
    # A crew past max_seconds while its first LLM call loads the SDK: the stop was raised
    # inside the import, leaving the module half-loaded (or its import lock held).
    import sys
    import threading
    import time

    from pytest_crewguard.thread_stop import CrewTimeout, importing, interrupt

    (tmp_path / "crewguard_slow_module.py").write_text(SLOW_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "crewguard_slow_module", raising=False)
    ended: list[BaseException | None] = []

    def load_then_work() -> None:
        try:
            import crewguard_slow_module  # noqa: F401

            while True:  # the crew's work after the import: stopped here
                time.sleep(0.01)
        except BaseException as err:
            ended.append(err)

    thread = threading.Thread(target=load_then_work, daemon=True)
    thread.start()
    started = time.monotonic()
    while not importing(thread) and time.monotonic() - started < 5:
        time.sleep(0.001)
    interrupt(thread)
    thread.join(10)
    assert not thread.is_alive()
    assert len(ended) == 1 and isinstance(ended[0], CrewTimeout)
    assert getattr(sys.modules.get("crewguard_slow_module"), "LOADED", False), "the import was cut short"


def test_a_thread_that_takes_up_an_abandoned_crews_work_is_stopped_too() -> None:
    # On a loaded machine the agent's next LLM call went to a fresh worker thread just after
    # the crew was found stuck: that thread was never told to stop, and ran to the provider's
    # slow answer.
    import threading
    import time

    from pytest_crewguard import deadline
    from pytest_crewguard.thread_stop import CrewTimeout

    class Agent:
        def __init__(self, crew: Any) -> None:
            self.crew = crew

        def work(self, ended: list[BaseException]) -> None:
            try:
                while True:
                    time.sleep(0.01)
            except BaseException as err:
                ended.append(err)

    class Crew:
        def __init__(self) -> None:
            self.agents: list[Any] = []
            self.tasks: list[Any] = []

    crew = Crew()
    deadline.abandon(crew, [], "test_crew.py::test_stuck")
    ended: list[BaseException] = []
    later = threading.Thread(target=Agent(crew).work, args=(ended,), daemon=True)
    later.start()
    later.join(deadline.LATECOMERS_WATCH_S + 10)
    assert not later.is_alive(), "the thread that took up the crew's work was never stopped"
    assert len(ended) == 1 and isinstance(ended[0], CrewTimeout)
