"""Streaming (``Crew(stream=True)``) and async crews record and replay with the same ledger as
the same crew run plainly: calls, input/output tokens and cost, for OpenAI and Anthropic."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply, ScriptedProvider
from pytest_crewguard.usage import Usage, classify_exchange

from .conftest import crew_test_file, read_dump
from .crewai_cassettes import CASSETTES

# CrewAI's own recording of the real API (MIT), in the sample kept with the tests.
ANTHROPIC_STREAM = (
    CASSETTES
    / "llms"
    / "anthropic"
    / "TestAnthropicToolCallStreaming.test_anthropic_streaming_emits_tool_call_events.yaml"
)

FINAL = "Agents plan their steps, call tools and remember what they found."


def research_script(request: ReceivedRequest) -> Reply:
    """Look the topic up first, answer once the tool's result is in the prompt.

    Each step has its own usage (and the answer cached input tokens), so a call counted twice,
    missed, or read with the wrong usage shows in the totals.
    """
    if "Facts: agents plan" in request.prompt_text:
        return Reply(text=FINAL, input_tokens=1400, output_tokens=210, cached_tokens=256)
    return Reply(
        text="Let me look that up.",
        tool_calls=Reply.tool("lookup", topic="AI agents").tool_calls,
        input_tokens=1000,
        output_tokens=45,
    )


BODY = """
import asyncio
from crewai import CrewOutput


@tool("lookup")
def lookup(topic: str) -> str:
    \"\"\"Look a topic up.\"\"\"
    return "Facts: agents plan before they act"


def research_crew(stream=False):
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher",
                  llm=make_llm(), tools=[lookup])
    task = Task(name="research", description="Research {topic} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task], stream=stream)


def streaming_crew():
    return research_crew(stream=True)


INPUTS = {"topic": "AI agents"}


@pytest.mark.crewguard(max_cost=0.05)
def test_plain(crewguard):
    dump(crewguard.kickoff(research_crew, inputs=INPUTS), "plain")


@pytest.mark.crewguard(max_cost=0.05, max_seconds=60)
def test_streamed(crewguard):
    run = crewguard.kickoff(streaming_crew, inputs=INPUTS)
    # The stream was read for the test: the output is the final CrewOutput, the chunks stay.
    assert isinstance(run.output, CrewOutput)
    assert run.stream.is_completed
    assert run.stream.result is run.output
    assert run.stream.get_full_text().endswith(run.output.raw)
    assert any(c.tool_call and c.tool_call.tool_name == "lookup" for c in run.stream.chunks)
    dump(run, "streamed")


@pytest.mark.crewguard(max_cost=0.05)
def test_async(crewguard):
    run = asyncio.run(crewguard.kickoff_async(research_crew, inputs=INPUTS))
    assert isinstance(run.output, CrewOutput)
    dump(run, "async")


@pytest.mark.crewguard(max_cost=0.05, max_seconds=60)
def test_async_streamed(crewguard):
    run = asyncio.run(crewguard.kickoff_async(streaming_crew, inputs=INPUTS))
    assert isinstance(run.output, CrewOutput)
    assert run.stream.get_full_text().endswith(run.output.raw)
    dump(run, "async_streamed")


@pytest.mark.crewguard(max_cost=0.05)
def test_application_streams(crewguard):
    streaming = streaming_crew().kickoff(inputs=INPUTS)  # the application's own code
    text = "".join(chunk.content for chunk in streaming)
    assert streaming.result.raw in text
    [run] = crewguard.runs
    dump(run, "application_streamed")


@pytest.mark.crewguard(max_cost=0.05)
def test_application_streams_async(crewguard):
    async def handler():
        streaming = await streaming_crew().kickoff_async(inputs=INPUTS)
        async for _chunk in streaming:
            pass
        return streaming.result

    result = asyncio.run(handler())
    [run] = crewguard.runs
    assert run.output.raw == result.raw
    dump(run, "application_async_streamed")
"""

# What each test of BODY dumps, and whether its crew streams.
RUNS = {
    "plain": ("test_plain", False),
    "streamed": ("test_streamed", True),
    "async": ("test_async", False),
    "async_streamed": ("test_async_streamed", True),
    "application_streamed": ("test_application_streams", True),
    "application_async_streamed": ("test_application_streams_async", True),
}


def _ledger(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in ("raw", "calls", "tokens", "llm_calls", "cost", "iterations")}


def _responses(pytester: pytest.Pytester, test: str) -> list[dict[str, Any]]:
    path = Path(pytester.path) / "cassettes" / "test_crew" / f"{test}.yaml"
    interactions = yaml.safe_load(path.read_text())["interactions"]
    llm = ("/chat/completions", "/messages")
    return [i["response"] for i in interactions if i["request"]["uri"].endswith(llm)]


@pytest.mark.parametrize(
    ("flavour", "model", "cost"),
    [
        # gpt-4o-mini: $0.15 / M input ($0.075 cached), $0.60 / M output.
        ("openai", "gpt-4o-mini", (1000 + 1144) * 0.15e-6 + 256 * 0.075e-6 + 255 * 0.6e-6),
        # claude-haiku-4-5: $1 / M input, $0.10 / M cache reads, $5 / M output.
        ("anthropic", "anthropic/claude-haiku-4-5", (1000 + 1400) * 1e-6 + 256 * 0.1e-6 + 255 * 5e-6),
    ],
    ids=["openai", "anthropic"],
)
def test_streamed_and_async_runs_have_the_plain_runs_ledger(pytester, provider, flavour, model, cost):
    server = provider(research_script)
    base_url = server.openai_base_url if flavour == "openai" else server.anthropic_base_url
    pytester.makepyfile(test_crew=crew_test_file(base_url, BODY, model=model))

    recorded = pytester.runpytest("--crewguard-record-mode=once")
    recorded.assert_outcomes(passed=len(RUNS))
    live = {name: read_dump(pytester, name) for name in RUNS}
    assert len(server.llm_requests) == 2 * len(RUNS)
    streamed_requests = [r for r in server.llm_requests if r.body.get("stream")]
    assert len(streamed_requests) == 2 * sum(streams for _, streams in RUNS.values())
    server.stop()

    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=len(RUNS))
    for name in RUNS:
        again = read_dump(pytester, name)
        assert _ledger(again) == _ledger(live[name]), name
        assert _ledger(again) == _ledger(live["plain"]), f"{name} differs from the plain run"

    plain = live["plain"]
    assert plain["raw"] == FINAL
    assert plain["llm_calls"] == 2
    # OpenAI's prompt_tokens include the cached ones; Anthropic reports cache reads apart.
    answer_input = 1400 + (256 if flavour == "anthropic" else 0)
    usage = [(c["input_tokens"], c["output_tokens"]) for c in plain["calls"]]
    assert usage == [(1000, 45), (answer_input, 210)]
    assert plain["cost"] == pytest.approx(cost)
    # What was recorded for the streamed runs really is a stream, and the plain run's is not.
    for name, (test, streams) in RUNS.items():
        content_types = {r["headers"]["content-type"][0].split(";")[0] for r in _responses(pytester, test)}
        assert content_types == {"text/event-stream" if streams else "application/json"}, name


FAILS = """
import asyncio


def streaming_crew(description="Research {topic} and summarise it"):
    crew = make_crew(description=description)
    return Crew(agents=crew.agents, tasks=crew.tasks, stream=True)


def slow_crew():
    return streaming_crew("Slowly research {topic}")


@pytest.mark.crewguard(max_seconds=1, record_mode="once")
def test_slow(crewguard):
    crewguard.kickoff(slow_crew, inputs={"topic": "AI agents"})


@pytest.mark.crewguard(max_seconds=1, record_mode="once")
def test_slow_async(crewguard):
    asyncio.run(crewguard.kickoff_async(slow_crew, inputs={"topic": "AI agents"}))


@pytest.mark.crewguard
def test_not_recorded(crewguard):
    crewguard.kickoff(streaming_crew, inputs={"topic": "AI agents"})
"""


def test_streamed_crew_fails_on_its_time_limit_and_on_a_replay_miss(pytester, provider):
    # Far longer than the inner session takes on a loaded machine (the provider's handler threads
    # are daemons, so the held answers cost nothing once the test is over).
    delay = 30.0
    server = provider(
        lambda request: Reply(text="Late.", delay_s=delay if "Slowly" in request.prompt_text else 0)
    )
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, FAILS))
    started = time.perf_counter()
    result = pytester.runpytest()
    took = time.perf_counter() - started
    result.assert_outcomes(failed=3)
    # Both limits hit while the provider was still holding its answers back.
    assert took < delay, f"the streamed crews were waited for: {took:.1f}s"
    result.stdout.fnmatch_lines(
        [
            "*test_slow*",
            "crewguard: the crew ran past max_seconds=1 *",
            "*test_slow_async*",
            "crewguard: the crew ran past max_seconds=1 *",
            "*test_not_recorded*",
            "crewguard: no recorded response for POST http://127.0.0.1:*/v1/chat/completions",
            "*test_not_recorded*FAILED cassette_miss*",
            "*test_slow *FAILED max_seconds*",
            "*test_slow_async *FAILED max_seconds*",
        ]
    )
    # Only the slow crews' streamed requests reached the provider; the unrecorded one did not.
    # (At most two: on a loaded machine a slow crew may still be starting when its second is up.)
    sent = server.llm_requests
    assert 1 <= len(sent) <= 2
    assert all(r.body.get("stream") is True and "Slowly" in r.prompt_text for r in sent)


# --- the scripted provider's streams, in-process -----------------------------------------------

REPLY = Reply(
    text="Let me look that up for you.",
    tool_calls=Reply.tool("lookup", topic="AI agents").tool_calls,
    input_tokens=900,
    output_tokens=70,
    cached_tokens=100,
)


def _sse(text: str) -> list[tuple[str | None, dict[str, Any]]]:
    """``(event name, data)`` of each server-sent event; ``[DONE]`` left out."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = [line for line in block.splitlines() if line.strip()]
        name = next((line[6:].strip() for line in lines if line.startswith("event:")), None)
        data = "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        if data and data != "[DONE]":
            events.append((name, json.loads(data)))
    return events


def _shape(events: list[tuple[str | None, dict[str, Any]]]) -> list[str]:
    """The event types in order, a run of the same type shown once, pings left out."""
    kinds = [data["type"] for _, data in events if data["type"] != "ping"]
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def _post(server: ScriptedProvider, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + path, json={"messages": [{"role": "user", "content": "hi"}]} | body)


def _usage(server: ScriptedProvider, path: str, response: httpx.Response) -> Usage | None:
    exchange = classify_exchange(
        "POST", server.url + path, b'{"model": "m", "messages": []}', response.status_code,
        dict(response.headers), response.content,
    )
    return exchange.usage


def _anthropic_stream(server: ScriptedProvider) -> list[tuple[str | None, dict[str, Any]]]:
    body = {"model": "claude-haiku-4-5", "max_tokens": 100, "tools": [{"name": "lookup"}], "stream": True}
    streamed = _post(server, "/v1/messages", body)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    return _sse(streamed.text)


def test_anthropic_stream_has_the_real_apis_events():
    real = yaml.safe_load(ANTHROPIC_STREAM.read_text())["interactions"][0]["response"]["body"]["string"]
    theirs = _sse(real)
    with ScriptedProvider(lambda _request: REPLY) as server:
        ours = _anthropic_stream(server)
    # Every event is named after its type, in the real API's order: text block, tool_use block.
    assert all(name == data["type"] for name, data in ours)
    assert _shape(ours) == _shape(theirs) == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    our_kinds = {data["type"]: data for _, data in ours}
    their_kinds = {data["type"]: data for _, data in theirs}
    for kind in their_kinds:
        assert set(our_kinds[kind]) == set(their_kinds[kind]), kind
    assert set(our_kinds["message_start"]["message"]) <= set(their_kinds["message_start"]["message"])
    assert set(our_kinds["message_delta"]["usage"]) == set(their_kinds["message_delta"]["usage"])
    deltas = [data["delta"]["type"] for _, data in ours if data["type"] == "content_block_delta"]
    assert set(deltas) == {"text_delta", "input_json_delta"}


def test_anthropic_stream_folds_into_the_plain_reply_with_its_usage():
    with ScriptedProvider(lambda _request: REPLY) as server:
        body = {"model": "claude-haiku-4-5", "max_tokens": 100, "tools": [{"name": "lookup"}]}
        streamed = _post(server, "/v1/messages", body | {"stream": True})
        plain = _post(server, "/v1/messages", body)
        client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="scripted")
        with client.messages.stream(**body, messages=[{"role": "user", "content": "hi"}]) as stream:
            final = stream.get_final_message()

    # The SDK folds the stream into the same message the plain request gets.
    whole = anthropic.types.Message.model_validate(plain.json())
    assert [b.model_dump(exclude={"id"}) for b in final.content] == [
        b.model_dump(exclude={"id"}) for b in whole.content
    ]
    assert final.stop_reason == whole.stop_reason == "tool_use"
    assert final.usage == whole.usage
    # message_start's usage says output_tokens=1; message_delta's final count must win.
    assert _usage(server, "/v1/messages", streamed) == _usage(server, "/v1/messages", plain)
    assert _usage(server, "/v1/messages", plain) == Usage(1000, 70, cached_tokens=100)


def test_openai_stream_carries_usage_only_when_the_client_asks():
    with ScriptedProvider(lambda _request: REPLY) as server:
        body = {"model": "gpt-4o-mini", "tools": [{"type": "function", "function": {"name": "lookup"}}]}
        path = "/v1/chat/completions"
        plain = _post(server, path, body)
        with_usage = _post(server, path, body | {"stream": True, "stream_options": {"include_usage": True}})
        without = _post(server, path, body | {"stream": True})
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="scripted")
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )

    expected = Usage(900, 70, cached_tokens=100)
    assert _usage(server, path, with_usage) == _usage(server, path, plain) == expected
    # Without stream_options.include_usage the real API sends no usage at all: nothing to count.
    assert all("usage" not in data for _, data in _sse(without.text))
    assert _usage(server, path, without) is None
    # With it, every chunk says "usage": null until the last one, which has no choices.
    *deltas, last = [data for _, data in _sse(with_usage.text)]
    assert all(d["usage"] is None and len(d["choices"]) == 1 for d in deltas)
    assert last["choices"] == [] and last["usage"]["prompt_tokens"] == 900
    # The SDK reads the pieces back into the whole reply.
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY.text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 70
