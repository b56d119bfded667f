"""Concurrent kickoffs in one test: each run holds exactly its own calls, and totals add up."""

from __future__ import annotations

import re
import threading
import time

import pytest

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from .conftest import crew_test_file, read_dump

TOPICS = ["alpha", "bravo", "charlie", "delta"]


def tokens(topic: str, step: int) -> tuple[int, int]:
    """Usage distinct per topic and per step, so a misattributed call shows in the numbers."""
    index = TOPICS.index(topic)
    return 1000 + 100 * index + 10 * step, 50 + 5 * index + step


class EchoingProvider:
    """Calls the tool for the request's topic, then answers naming the topic; waits a little
    on the first step so that all four runs are in flight at the same time."""

    def __init__(self) -> None:
        self.served: list[tuple[str, int, int, int]] = []  # (topic, step, in, out)
        self.arrived: dict[tuple[str, int], list[float]] = {}

    def __call__(self, request: ReceivedRequest) -> Reply:
        match = re.search(r"Research (\w+) and summarise it", request.prompt_text)
        assert match, request.prompt_text
        topic = match.group(1)
        step = 2 if any(m.get("role") == "tool" for m in request.body.get("messages", [])) else 1
        input_tokens, output_tokens = tokens(topic, step)
        self.served.append((topic, step, input_tokens, output_tokens))
        self.arrived.setdefault((topic, step), []).append(time.perf_counter())
        if step == 1:
            return Reply(
                tool_calls=Reply.tool("lookup", topic=topic).tool_calls,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                delay_s=1.5,
            )
        return Reply(text=f"Report on {topic}.", input_tokens=input_tokens, output_tokens=output_tokens)


BODY = """
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

TOPICS = ["alpha", "bravo", "charlie", "delta"]


@tool("lookup")
def lookup(topic: str) -> str:
    \"\"\"Look a topic up.\"\"\"
    return f"Facts about {topic}"


def report(crewguard, runs, name):
    data = {"runs": [{"raw": r.output.raw, "cost": r.cost, "llm_calls": r.llm_calls,
                      "calls": [[c.input_tokens, c.output_tokens, c.agent, c.task] for c in r.calls],
                      "iterations": list(r.iterations.values()),
                      "tools": [e.tool_args for e in r.tool_events if e.type == "tool_usage_started"]}
                     for r in runs],
            "total_cost": crewguard.cost, "total_calls": len(crewguard.calls),
            "total_tokens": crewguard.tokens, "all_runs": len(crewguard.runs)}
    with open(os.path.join(os.path.dirname(__file__), name + ".json"), "w") as f:
        json.dump(data, f)


@pytest.mark.crewguard
def test_threads(crewguard):
    start = threading.Barrier(len(TOPICS))

    def one(topic):
        start.wait()  # all four kick off together
        return crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": topic})

    with ThreadPoolExecutor(len(TOPICS)) as pool:
        runs = list(pool.map(one, TOPICS))
    report(crewguard, runs, "threads")


@pytest.mark.crewguard
def test_gathered(crewguard):
    async def all_topics():
        return await asyncio.gather(*(
            crewguard.kickoff_async(lambda: make_crew(tools=[lookup]), inputs={"topic": topic})
            for topic in TOPICS))

    report(crewguard, asyncio.run(all_topics()), "gathered")
"""


def _check(data: dict, served: list[tuple[str, int, int, int]]) -> None:
    assert data["all_runs"] == len(TOPICS)
    for topic, run in zip(TOPICS, data["runs"], strict=True):
        assert run["raw"] == f"Report on {topic}."
        # Exactly the two calls the provider served for this run's input, in order.
        mine = sorted((s for s in served if s[0] == topic), key=lambda s: s[1])
        assert [(s[2], s[3]) for s in mine] == [tokens(topic, 1), tokens(topic, 2)]
        assert run["calls"] == [[*tokens(topic, step), "Researcher", "research"] for step in (1, 2)]
        assert run["llm_calls"] == 2 and run["iterations"] == [2]
        assert topic in run["tools"][0] and len(run["tools"]) == 1
    assert data["total_calls"] == 2 * len(TOPICS)
    assert data["total_cost"] == pytest.approx(sum(run["cost"] for run in data["runs"]), abs=1e-12)
    assert data["total_tokens"] == sum(sum(tokens(t, s)) for t in TOPICS for s in (1, 2))


def test_concurrent_kickoffs_each_get_exactly_their_own_calls(pytester, provider):
    echo = EchoingProvider()
    server = provider(echo)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=2)
    served = list(echo.served)
    assert len(served) == 2 * 2 * len(TOPICS)
    # The runs really overlapped: in each test, all four first requests arrived before any run
    # sent its second (which waits for a first answer, held 1.5 s). An order, not a duration:
    # run one after another, a run's second request would come before the next run's first.
    for test in (0, 1):
        firsts = [echo.arrived[(topic, 1)][test] for topic in TOPICS]
        seconds = [echo.arrived[(topic, 2)][test] for topic in TOPICS]
        assert max(firsts) < min(seconds)
    threads, gathered = read_dump(pytester, "threads"), read_dump(pytester, "gathered")
    _check(threads, served[: 2 * len(TOPICS)])
    _check(gathered, served[2 * len(TOPICS) :])

    # Replay: concurrent requests find their recordings by body, whatever order they come in.
    server.stop()
    pytester.runpytest().assert_outcomes(passed=2)
    assert read_dump(pytester, "threads") == threads
    assert read_dump(pytester, "gathered") == gathered


APP_FIRST_BODY = """
@pytest.mark.crewguard
def test_app_kickoff_then_fixture_kickoff(crewguard):
    crew = make_crew()
    crew.kickoff(inputs={"topic": "alpha"})  # the application's own kickoff, guarded too
    run = crewguard.kickoff(crew, inputs={"topic": "bravo"})
    assert run.output.raw == "Report on bravo."
    assert [c.input_tokens for c in run.calls] == [1120]
    assert [[c.input_tokens for c in r.calls] for r in crewguard.runs] == [[1000], [1120]]
"""


def test_the_run_is_the_kickoff_the_crew_just_made(pytester, provider):
    # The same crew object kicked off twice (once by the application): its run is the
    # kickoff that crewguard.kickoff made, not the first one found for that object.
    server = provider(
        lambda request: (
            Reply(text="Report on bravo.", input_tokens=1120)
            if "Research bravo" in request.prompt_text
            else Reply(text="Report on alpha.", input_tokens=1000)
        )
    )
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, APP_FIRST_BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)


def test_a_start_event_still_queued_when_another_kickoff_ends_is_not_lost(crewai_loaded) -> None:
    # Two kickoffs at once: when one ends, crewguard looks at every call so far, and the other's
    # newest request may be on the wire while its llm_call_started event still waits for a free
    # handler thread. That call was counted as made with crewguard's handlers removed.
    from crewai.events import crewai_event_bus
    from crewai.events.types.llm_events import LLMCallStartedEvent

    from pytest_crewguard import events as crew_events
    from pytest_crewguard.blind_spots import calls_without_events
    from pytest_crewguard.events import CrewEvent, EventLog
    from pytest_crewguard.usage import classify_exchange
    from pytest_crewguard.wire import HttpExchange

    log = EventLog()
    log.add(CrewEvent(event_id="k", type="crew_kickoff_started", sequence=1, parent_id=None))
    crew_events.activate(log)
    release = threading.Event()
    try:
        # Every handler thread busy, as on a loaded machine: the event waits in the queue.
        crewai_event_bus._ensure_executor_initialized()
        busy = [crewai_event_bus._sync_executor.submit(release.wait, 30) for _ in range(10)]
        event = LLMCallStartedEvent(model="gpt-4o-mini", messages=[], call_id="c")
        crewai_event_bus.emit(None, event)
        url = "https://api.openai.com/v1/chat/completions"
        body = '{"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
        exchange = classify_exchange("POST", url, "{}", 200, {}, body)
        call = HttpExchange(
            index=0, method="POST", uri=url, request_body="{}", status=200, response_headers={},
            response_body=body,
            scope=(("k", "crew_kickoff_started"), (str(event.event_id), "llm_call_started")),
            recorded_latency_s=0.0, replayed=True, exchange=exchange,
        )
        threading.Timer(0.3, release.set).start()  # the handler threads free up a moment later
        assert calls_without_events([call], log) == (0, 0)
        assert log.get(str(event.event_id)) is not None
    finally:
        release.set()
        for future in busy:
            future.result(timeout=30)
        crew_events.activate(None)
