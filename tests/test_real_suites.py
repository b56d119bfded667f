"""Living in real suites: pytest-recording's marker, fixtures that clear CrewAI's event bus,
cassettes recorded by other tools (body-blind ``match_on``, project normalisation), token-count
preflights an old cassette lacks, and a miss that reaches the application as an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import Reply

from .conftest import answer, crew_test_file, read_dump, recorded_then_replayed

CLEARING_CONFTEST = """
import pytest

@pytest.fixture(autouse=True)
def cleanup_event_handlers():
    # As CrewAI's own conftest does after every test.
    yield
    from crewai.events.event_bus import crewai_event_bus
    with crewai_event_bus._rwlock.w_locked():
        crewai_event_bus._sync_handlers.clear()
        crewai_event_bus._async_handlers.clear()
"""

COEXISTING = """
@pytest.mark.crewguard(cassette="shared.yaml")
def test_first(crewguard):
    dump(crewguard.kickoff(make_crew, inputs={"topic": "AI"}), "first")

@pytest.mark.vcr
@pytest.mark.crewguard(cassette="shared.yaml")
def test_second_with_vcr_marker(crewguard):
    dump(crewguard.kickoff(make_crew, inputs={"topic": "AI"}), "second")

@pytest.mark.crewguard(cassette="shared.yaml")
def test_bus_cleared_while_running(crewguard):
    from crewai.events.event_bus import crewai_event_bus
    with crewai_event_bus._rwlock.w_locked():
        crewai_event_bus._sync_handlers.clear()
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
"""


def test_vcr_marker_and_a_clearing_conftest_change_no_number(pytester: pytest.Pytester, provider) -> None:
    server = provider([answer("Agents act.")] * 3)
    pytester.makeconftest(CLEARING_CONFTEST)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, COEXISTING))
    recorded = pytester.runpytest("--crewguard-record-mode=new_episodes", "-p", "recording")
    recorded.assert_outcomes(passed=2, failed=1)
    server.stop()

    result = pytester.runpytest("-p", "recording")
    result.assert_outcomes(passed=2, failed=1)
    first, second = read_dump(pytester, "first"), read_dump(pytester, "second")
    assert first["calls"] == second["calls"]
    assert second["llm_calls"] == 1 and second["cost"] == pytest.approx(0.00036)
    # Attributed to the agent, and rounds counted, although the bus was cleared before it ran.
    assert second["calls"][0]["agent"] == "Researcher"
    assert second["iterations"] == {"Researcher/research": 1}
    result.stdout.fnmatch_lines(
        [
            "*LLM call(s) of this test were made inside a CrewAI kickoff whose events never reached*",
            "*test_bus_cleared_while_running*FAILED events_missing*",
            "*crewguard: 1 test carry @pytest.mark.vcr too: crewguard's cassette answered*",
        ]
    )


BODY = """
@pytest.mark.crewguard(MARKER)
def test_research(crewguard):
    dump(crewguard.kickoff(make_crew, inputs={"topic": "AI agents"}), "research")
"""


def _test_file(base_url: str, marker: str = "", model: str = "gpt-4o-mini") -> str:
    return crew_test_file(base_url, BODY.replace("MARKER", marker), model=model)


def test_body_blind_match_on_replays_in_recorded_order_and_says_so(
    pytester: pytest.Pytester, provider
) -> None:
    server = provider([answer("Recorded answer.")])
    pytester.makepyfile(test_crew=_test_file(server.openai_base_url))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    changed = _test_file(server.openai_base_url).replace("Research {topic}", "Study {topic}")
    pytester.makepyfile(test_crew=changed)
    pytester.runpytest().assert_outcomes(failed=1)  # strict by default

    pytester.makeini("[pytest]\ncrewguard_match_on = method, scheme, host, port, path\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert read_dump(pytester, "research")["raw"] == "Recorded answer."
    result.stdout.fnmatch_lines(
        ["*1 test replayed with match_on=?'method', 'scheme', 'host', 'port', 'path'?*"]
    )


def test_project_config_ignores_a_body_field(pytester: pytest.Pytester, provider) -> None:
    server = provider([answer("Recorded answer.")])
    pytester.makepyfile(test_crew=_test_file(server.openai_base_url))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    hotter = _test_file(server.openai_base_url).replace(
        "base_url=BASE_URL)", "base_url=BASE_URL, temperature=0.3)"
    )
    pytester.makepyfile(test_crew=hotter)
    missed = pytester.runpytest()
    missed.assert_outcomes(failed=1)
    missed.stdout.fnmatch_lines(["*+temperature: 0.3*"])
    pytester.makeconftest(
        "import pytest\n\n@pytest.fixture\ndef crewguard_config():\n"
        "    return {'ignore_body_fields': ['temperature']}\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_unrecorded_token_count_preflights_are_answered_as_unavailable(
    pytester: pytest.Pytester, provider
) -> None:
    server = provider([answer("Claude answers.", input_tokens=1000, output_tokens=100)])
    pytester.makepyfile(test_crew=_test_file(server.anthropic_base_url, model="anthropic/claude-haiku-4-5"))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    # As if recorded by an older CrewAI that sent no preflight.
    path = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    data = yaml.safe_load(path.read_text())
    data["interactions"] = [i for i in data["interactions"] if "count_tokens" not in i["request"]["uri"]]
    assert len(data["interactions"]) == 1
    path.write_text(yaml.safe_dump(data))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert read_dump(pytester, "research")["cost"] == pytest.approx(1000 / 1e6 + 100 * 5 / 1e6)
    result.stdout.fnmatch_lines(["*1 test sent token-count preflights their cassettes do not hold*"])


STAND_INS = """
import httpx
import pytest

@pytest.mark.crewguard
def test_telemetry_is_answered():
    assert httpx.post("https://telemetry.crewai.com:4319/v1/traces", content=b"x").status_code == 200

@pytest.mark.crewguard
def test_other_traffic_is_a_miss():
    assert httpx.get("https://example.com/api").status_code == 400
"""


def test_telemetry_is_never_a_miss_other_traffic_is(pytester: pytest.Pytester, crewai_loaded: None) -> None:
    pytester.makepyfile(test_http=STAND_INS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*no recorded response for GET https://example.com/api*",
            "*test_other_traffic_is_a_miss*FAILED cassette_miss*",
        ]
    )


MOCKED_SEND = """
import httpx

ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "Mocked answer."}}],
          "usage": {"prompt_tokens": 200000, "completion_tokens": 10, "total_tokens": 200010}}

@pytest.mark.crewguard(max_cost=0.0001)
def test_mocked_above_the_transport(crewguard, monkeypatch):
    def send(self, request, **kwargs):
        return httpx.Response(200, json=ANSWER, request=request)

    monkeypatch.setattr(httpx.Client, "send", send)
    dump(crewguard.kickoff(make_crew, inputs={"topic": "AI"}), "mocked")
"""


def test_llm_calls_answered_above_the_transport_fail_as_not_seen(
    pytester: pytest.Pytester, crewai_loaded: None
) -> None:
    # A mock of httpx.Client.send answers before any transport: CrewAI reports the call, the
    # cassette never sees it. It was 0 calls and $0 under a cost gate, and a pass.
    pytester.makepyfile(test_crew=crew_test_file("http://127.0.0.1:9/v1", MOCKED_SEND))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*CrewAI reported 1 LLM call(s) completed in test_crew.py::test_mocked_above_the_transport, "
            "but crewguard's cassette answered 0 HTTP request(s)*",
            "*test_mocked_above_the_transport*FAILED traffic_not_seen*",
        ]
    )




MOCKED_WITH_OTHER_TRAFFIC = """
import httpx

ANSWER = {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "Mocked answer."}}],
          "usage": {"prompt_tokens": 200000, "completion_tokens": 10, "total_tokens": 200010}}
SEND = httpx.Client.send

@pytest.mark.crewguard(max_cost=0.0001)
def test_mocked_beside_other_traffic(crewguard, monkeypatch):
    def send(self, request, **kwargs):  # the chat calls mocked, everything else sent
        if request.url.path.endswith("/chat/completions"):
            return httpx.Response(200, json=ANSWER, request=request)
        return SEND(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", send)
    # A tool's own request, answered by the provider and recorded: no LLM call.
    body = {"input": "a", "model": "text-embedding-3-small"}
    assert httpx.post(BASE_URL + "/embeddings", json=body).is_success
    dump(crewguard.kickoff(make_crew, inputs={"topic": "AI"}), "mocked")
"""


def test_other_traffic_does_not_make_up_for_llm_calls_answered_above(
    pytester: pytest.Pytester, provider: Any, crewai_loaded: None
) -> None:
    # The count of answers took any answer: an embeddings request (or a tool's REST call) hid
    # one mocked LLM call, a pass at $0 under a cost gate.
    server = provider([])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, MOCKED_WITH_OTHER_TRAFFIC))
    result = pytester.runpytest("--crewguard-record-mode=rewrite")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_mocked_beside_other_traffic*FAILED traffic_not_seen*"])



OWN_LLM_CLASS = """
import pytest
from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM


class Gateway(BaseLLM):  # answers without HTTP through httpx and without LLM events
    def call(self, messages, *args, **kwargs):
        return "Final answer from our own gateway."


def make_crew():
    agent = Agent(role="Researcher", goal="g", backstory="b", llm=Gateway(model="gpt-4o"))
    return Crew(agents=[agent], tasks=[Task(description="Research", expected_output="text", agent=agent)])


@pytest.mark.crewguard(max_cost=0.01)
def test_own_llm_class(crewguard):
    assert crewguard.kickoff(make_crew).output.raw == "Final answer from our own gateway."
"""


def test_agents_answered_by_an_llm_crewguard_cannot_see_fail_as_not_seen(
    pytester: pytest.Pytester, crewai_loaded: None
) -> None:
    # It was 0 calls and $0 under a cost gate, and a pass.
    pytester.makepyfile(test_own=OWN_LLM_CLASS)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*1 agent execution(s) completed in test_own.py::test_own_llm_class, but crewguard saw no LLM call*",
        "*test_own_llm_class*FAILED traffic_not_seen*",
    ])


CLEARED_MIDWAY = """
from crewai.events.event_bus import crewai_event_bus


@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    # The application clears the bus while the crew runs: later rounds are never seen.
    with crewai_event_bus._rwlock.w_locked():
        crewai_event_bus._sync_handlers.clear()
        crewai_event_bus._async_handlers.clear()
    return "found"


@pytest.mark.crewguard(max_iterations=1)
def test_cleared_midway(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "AI"})
"""


def _tool_then_answer(request):
    if not any(m.get("role") == "tool" for m in request.body.get("messages", [])):
        return Reply.tool("lookup", q="x")
    return answer("Done.")


def test_handlers_removed_midway_through_a_kickoff_are_events_missing(
    pytester: pytest.Pytester, provider
) -> None:
    # Only the kickoff's start was checked: two rounds passed max_iterations=1, the second
    # call had no agent.
    server = provider(_tool_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, CLEARED_MIDWAY))
    for result in recorded_then_replayed(pytester, server):
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(
            ["*LLM call(s) of this test were made inside a CrewAI kickoff whose events never reached*",
             "*test_cleared_midway*FAILED events_missing*"]
        )


CLEARING_BEFORE = """
import pytest

@pytest.fixture(autouse=True)
def fresh_bus():
    # Set up after crewguard's marker fixture, which goes first: the bus is cleared after
    # crewguard attached its handlers, before the test body runs.
    from crewai.events.event_bus import crewai_event_bus
    with crewai_event_bus._rwlock.w_locked():
        crewai_event_bus._sync_handlers.clear()
        crewai_event_bus._async_handlers.clear()
    yield
"""


def test_a_fixture_clearing_the_bus_before_the_body_changes_no_number(
    pytester: pytest.Pytester, provider
) -> None:
    server = provider([answer("Agents act.")])
    pytester.makeconftest(CLEARING_BEFORE)
    body = """
    @pytest.mark.crewguard
    def test_research(crewguard):
        dump(crewguard.kickoff(make_crew, inputs={"topic": "AI"}), "research")
    """
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, body))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    pytester.runpytest().assert_outcomes(passed=1)
    run = read_dump(pytester, "research")
    assert run["calls"][0]["agent"] == "Researcher" and run["iterations"] == {"Researcher/research": 1}
