"""max_seconds: a hard wall-clock limit per kickoff, and a limit on the projected time in replay."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply, ToolCall

from .conftest import crew_test_file, read_dump
from .test_iterations import outcomes

TOOL = """
@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    return "some facts"
"""

HANGS = (
    TOOL
    + """

# 2 s: time for the first call to finish on a loaded machine, so the message lists it.
@pytest.mark.crewguard(max_seconds=2)
def test_slow(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "slow things"})


@pytest.mark.crewguard(max_seconds=2)
def test_slow_async(crewguard):
    import asyncio

    asyncio.run(crewguard.kickoff_async(lambda: make_crew(tools=[lookup]), inputs={"topic": "slow things"}))


@pytest.mark.crewguard
def test_next(crewguard):
    run = crewguard.kickoff(make_crew, inputs={"topic": "quick things"})
    assert run.output.raw == "quick answer"
"""
)


def tool_results(req: ReceivedRequest) -> int:
    return sum(1 for m in req.body.get("messages", []) if m.get("role") == "tool")


SLOW_REPLY_S = 30.0


def slow_second_call(delay_s: float) -> Callable[[ReceivedRequest], Reply]:
    """A tool round answered at once, then an answer that takes ``delay_s``."""

    def reply(req: ReceivedRequest) -> Reply:
        if "ping" in req.prompt_text:
            return Reply(text="pong")
        if "quick things" in req.prompt_text:
            return Reply(text="quick answer")
        if req.body.get("tools") and not tool_results(req):
            return Reply.tool("lookup", q="slow")
        return Reply(text="slow answer", delay_s=delay_s)

    return reply


def warm_up(base_url: str) -> None:
    """Load, in this process, the modules a crew's first LLM call imports lazily.

    pytester's in-process runs unload whatever they imported, so without this every inner run
    would spend tenths of a second importing the OpenAI SDK's types and genai-prices' data:
    time a real pytest process spends once, not per test, and not what is measured here.
    """
    from crewai import LLM
    from genai_prices import data  # noqa: F401

    assert LLM(model="gpt-4o-mini", base_url=base_url).call("ping") == "pong"


def crew_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("crewguard-kickoff", "asyncio_"))]


def test_hard_limit_fails_at_once_and_the_session_goes_on(pytester: pytest.Pytester, provider: Any) -> None:
    # The slow reply takes far longer than any loaded machine needs for the whole inner session,
    # so the bounds below tell "stopped at max_seconds" from "waited for the reply" with a wide
    # margin (the provider's handler threads are daemons: the unsent reply costs nothing).
    server = provider(slow_second_call(SLOW_REPLY_S))
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, HANGS))

    started = time.perf_counter()
    alone = pytester.runpytest("--crewguard-record-mode=once", "-k", "test_slow and not async")
    took = time.perf_counter() - started
    assert outcomes(alone) == {"test_slow": "failed"}
    # The whole inner session, from its start to its end-of-run table, well before the reply.
    assert took < SLOW_REPLY_S / 2, f"max_seconds=2 failed after {took:.2f} s"
    alone.stdout.fnmatch_lines(
        [
            "crewguard: the crew ran past max_seconds=2 (stopped waiting after * s); "
            "the test fails now instead of hanging.",
            "  LLM calls finished so far:",
            "    1. gpt-4o-mini Researcher / research in=120 out=30",
            "  Where the crew was:",
            "  crew thread crewguard-kickoff[[]test_crew.py::test_slow[]]:",
            '*crewai/task.py", line *, in execute_sync',
            "  thread asyncio_*:",
            '*crewai/llms/providers/openai/completion.py", line *, in _handle_completion',
            "  ... * frames in openai, httpx*",
            '*httpcore/_backends/sync.py", line *, in read',
        ]
    )
    # The timed-out run is in the table with the call it finished and the gate that failed.
    alone.stdout.fnmatch_lines(
        ["*test_crew.py::test_slow *1 *120 *30 *$0.000036 *1 *0 *.??s *.??s *FAILED max_seconds"]
    )
    # The crew's threads do not wait for the slow reply: they are stopped.
    deadline = time.perf_counter() + 10.0
    while crew_threads() and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert crew_threads() == []

    # The same through kickoff_async (CrewAI runs the kickoff on an asyncio worker thread),
    # and a test after them in the same session runs and passes.
    started = time.perf_counter()
    session = pytester.runpytest("--crewguard-record-mode=all")
    took = time.perf_counter() - started
    assert outcomes(session) == {"test_slow": "failed", "test_slow_async": "failed", "test_next": "passed"}
    assert took < SLOW_REPLY_S * 0.8, f"two 2 s timeouts and a quick test took {took:.2f} s"
    session.stdout.fnmatch_lines(
        [
            "*_ test_slow_async _*",
            "crewguard: the crew ran past max_seconds=2 (stopped waiting after * s); "
            "the test fails now instead of hanging.",
            "  LLM calls finished so far:",
            "    1. gpt-4o-mini Researcher / research in=120 out=30",
            "  Where the crew was:",
            "  thread asyncio_*:",
            '*crewai/crew.py", line *, in kickoff',
        ]
    )
    assert "During handling of the above exception" not in session.stdout.str()
    assert len([r for r in server.llm_requests if "quick things" in r.prompt_text]) == 1


THREE_CALLS = (
    TOOL
    + """

@pytest.mark.crewguard
def test_three_calls(crewguard):
    run = crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "AI agents"})
    dump(run, "three")
"""
)


def three_slow_calls(req: ReceivedRequest) -> Reply:
    """Two tool rounds and an answer, each taking 1 s at the provider."""
    if "ping" in req.prompt_text:
        return Reply(text="pong")
    if req.body.get("tools") and tool_results(req) < 2:
        return Reply(tool_calls=(ToolCall("lookup", {"q": f"x{tool_results(req)}"}),), delay_s=1.0)
    return Reply(text="AI agents plan and act.", delay_s=1.0)


def _three_calls_within(pytester: pytest.Pytester, base_url: str, seconds: int) -> None:
    marker = f"@pytest.mark.crewguard(max_seconds={seconds})\n"
    limited = THREE_CALLS.replace("@pytest.mark.crewguard\n", marker)
    pytester.makepyfile(test_crew=crew_test_file(base_url, limited))


def _cassette(pytester: pytest.Pytester) -> Path:
    return Path(pytester.path) / "cassettes" / "test_crew" / "test_three_calls.yaml"


def test_projected_time_from_recorded_latencies(pytester: pytest.Pytester, provider: Any) -> None:
    server = provider(three_slow_calls)
    warm_up(server.openai_base_url)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, THREE_CALLS))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    live = read_dump(pytester, "three")
    assert live["llm_calls"] == 3 and live["elapsed_s"] >= 3.0
    server.stop()

    started = time.perf_counter()
    replayed = pytester.runpytest()
    took = time.perf_counter() - started
    replayed.assert_outcomes(passed=1)
    run = read_dump(pytester, "three")
    elapsed, projected = run["elapsed_s"], run["projected_s"]
    print(f"replay: {took:.2f} s session, {elapsed:.3f} s kickoff, projected {projected:.3f} s")
    # Replay skips the provider's 3 s: it must be far faster than the live run was.
    assert elapsed < live["elapsed_s"] / 2, f"replaying three calls took {elapsed:.2f} s"
    assert 3.0 <= projected < 3.0 + elapsed + 1.0
    replayed.stdout.fnmatch_lines([f"*test_crew.py::test_three_calls *3 *360 *90 * {projected:.2f}s *passed"])

    # The same cassette under max_seconds=2: replay is fast, the provider is not.
    _three_calls_within(pytester, server.openai_base_url, seconds=2)
    limited = pytester.runpytest()
    limited.assert_outcomes(failed=1)
    limited.stdout.fnmatch_lines(
        [
            "crewguard: projected time 3.* s is over max_seconds=2 (3.* s of recorded provider latency "
            "over 3 calls + 0.* s local); against the live provider this run would take that long",
            "*test_crew.py::test_three_calls *3 *360 *90 * 3.*s *FAILED max_seconds",
        ]
    )


def test_a_cassette_without_latencies_has_no_projection(pytester: pytest.Pytester, provider: Any) -> None:
    def three_quick_calls(req: ReceivedRequest) -> Reply:
        if req.body.get("tools") and tool_results(req) < 2:
            return Reply(tool_calls=(ToolCall("lookup", {"q": f"x{tool_results(req)}"}),))
        return Reply(text="AI agents plan and act.")

    server = provider(three_quick_calls)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, THREE_CALLS))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    # A cassette recorded without crewguard (or by an older version) has no latency header.
    data = yaml.safe_load(_cassette(pytester).read_text())
    for interaction in data["interactions"]:
        assert interaction["response"]["headers"].pop("x-crewguard-latency-s")
    _cassette(pytester).write_text(yaml.safe_dump(data))

    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=1)
    assert read_dump(pytester, "three")["projected_s"] is None
    replayed.stdout.fnmatch_lines(
        [
            "*test_crew.py::test_three_calls *3 * n/a *passed",
            "projected n/a: calls without a recorded latency (cassettes recorded by another tool, or "
            "edited); record them again to get one",
        ]
    )

    # One latency known, one not: what is known is a floor, and max_seconds checks it (it
    # passed before, whatever the known latencies said).
    data["interactions"][1]["response"]["headers"]["x-crewguard-latency-s"] = ["1000"]
    _cassette(pytester).write_text(yaml.safe_dump(data))
    _three_calls_within(pytester, server.openai_base_url, seconds=10)
    floored = pytester.runpytest()
    floored.assert_outcomes(failed=1)
    floored.stdout.fnmatch_lines(
        ["crewguard: projected time is at least 100?.* s, over max_seconds=10: the recorded provider "
         "latencies of 1 of 3 calls and * s local already add up to that (2 call(s) have no recorded "
         "latency)*"]
    )


BLOCKED_IN_THE_BODY = """
import threading
import time


@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    time.sleep(20)  # a tool that never answers in time
    return "some facts"


@pytest.mark.crewguard(max_seconds=1)
def test_app_kickoff_blocks(crewguard):
    make_crew(tools=[lookup]).kickoff(inputs={"topic": "slow things"})  # the application's own


@pytest.mark.crewguard(max_seconds=1)
def test_app_thread_blocks(crewguard):
    crew = make_crew(tools=[lookup])
    worker = threading.Thread(target=lambda: crew.kickoff(inputs={"topic": "slow things"}))
    worker.start()
    worker.join()


@pytest.mark.crewguard(max_seconds=1)
def test_app_kickoff_for_each_blocks(crewguard):
    make_crew(tools=[lookup]).kickoff_for_each(inputs=[{"topic": "slow things"}])  # runs a copy


@pytest.mark.crewguard(max_seconds=1)
def test_app_agent_kickoff_blocks(crewguard):
    from crewai import Agent

    agent = Agent(role="Researcher", goal="g", backstory="b", llm=LLM(model=MODEL, base_url=BASE_URL),
                  tools=[lookup])
    agent.kickoff("Research slow things")


@tool("lookup")
def quick_lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    time.sleep(0.6)  # slow enough for the watchdog to look while it runs, well within max_seconds
    return "some facts"


class Stop(BaseException):
    \"\"\"The application's own BaseException: CrewAI sends no end event for the kickoff.\"\"\"


def stop(_output):
    raise Stop("stop here")


@pytest.mark.crewguard(max_seconds=3)  # room for the quick kickoff on a loaded machine
def test_app_kickoff_stopped_then_a_quick_one(crewguard):
    crew = make_crew()
    crew.tasks[0].callback = stop
    with pytest.raises(Stop):
        crew.kickoff(inputs={"topic": "quick things"})
    time.sleep(3.2)  # the first kickoff is now older than max_seconds, and over
    make_crew(tools=[quick_lookup]).kickoff(inputs={"topic": "slow things"})


@pytest.mark.crewguard(max_seconds=1)
def test_app_akickoff_blocks(crewguard):
    import asyncio

    asyncio.run(make_crew(tools=[lookup]).akickoff(inputs={"topic": "slow things"}))  # native async
"""


def test_a_crew_the_test_kicks_off_itself_is_held_to_max_seconds(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # Only crewguard.kickoff had a deadline: a blocked application kickoff hung the session.
    server = provider(slow_second_call(0.0))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BLOCKED_IN_THE_BODY))
    started = time.perf_counter()
    result = pytester.runpytest_subprocess("--crewguard-record-mode=once", "-p", "no:randomly", timeout=60)
    took = time.perf_counter() - started
    result.assert_outcomes(failed=5, passed=1)  # a kickoff ended by a BaseException is no running one
    # Counted where each failure starts: the short summary repeats the message as far as the
    # terminal is wide.
    head = "crewguard: a crew the test's code kicked off"
    starts = [line for line in result.outlines if line.startswith(head)]
    assert len(starts) == 5, starts
    result.stdout.fnmatch_lines([
        "crewguard: a crew the test's code kicked off ran past max_seconds=1 (*s so far); the test fails "
        "now instead of hanging.",
        "  Where the crew was:",
        "*time.sleep(20)*",
    ])
    assert took < 60, f"the session took {took:.1f} s: it waited for the blocked tools"
    # The stopped runs took their time: not 0.00s in the table.
    row = next(line for line in result.outlines if line.startswith("test_crew.py::test_app_thread_blocks "))
    assert float(row.split()[-3].rstrip("s")) >= 1.0, row
