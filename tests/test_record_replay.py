"""Record through a real crew against the scripted provider, stop it, replay offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import Reply

from .conftest import FAKE_ANTHROPIC_KEY, FAKE_OPENAI_KEY, answer, crew_test_file, read_dump

BODY = """
@pytest.mark.crewguard(max_cost=0.01)
def test_research(crewguard):
    run = crewguard.kickoff(make_crew, inputs={"topic": "AI agents"})
    dump(run, "research")
    assert run.llm_calls == 1
"""


def _cassette(pytester: pytest.Pytester, name: str = "test_research") -> Path:
    return Path(pytester.path) / "cassettes" / "test_crew" / f"{name}.yaml"


def test_record_then_replay_gives_same_output_ledger_and_cost(pytester, provider):
    server = provider([answer("AI agents plan, act and remember.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))

    recorded = pytester.runpytest("--crewguard-record-mode=once")
    recorded.assert_outcomes(passed=1)
    first = read_dump(pytester, "research")
    assert _cassette(pytester).is_file()
    assert len(server.llm_requests) == 1
    server.stop()

    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=1)
    second = read_dump(pytester, "research")
    assert second["raw"] == first["raw"] == "AI agents plan, act and remember."
    assert second["calls"] == first["calls"]
    assert second["cost"] == first["cost"] == pytest.approx(0.00036)
    call = second["calls"][0]
    assert (call["agent"], call["task"], call["model"]) == ("Researcher", "research", "gpt-4o-mini")
    assert (call["input_tokens"], call["output_tokens"]) == (1200, 300)
    # The table shows the test with sub-cent precision and the price data version.
    replayed.stdout.fnmatch_lines(
        ["*crewguard*", "*test_crew.py::test_research*$0.000360*passed*", "*prices: genai-prices*"]
    )


def test_anthropic_crew_records_and_replays(pytester, provider):
    server = provider([answer("Claude says hello.", input_tokens=1000, output_tokens=100)])
    pytester.makepyfile(
        test_crew=crew_test_file(server.anthropic_base_url, BODY, model="anthropic/claude-haiku-4-5")
    )
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    pytester.runpytest().assert_outcomes(passed=1)
    data = read_dump(pytester, "research")
    assert data["raw"] == "Claude says hello."
    # claude-haiku-4-5: $1 per million input tokens, $5 per million output tokens.
    assert data["cost"] == pytest.approx(1000 * 1 / 1e6 + 100 * 5 / 1e6)
    assert data["calls"][0]["provider"] == "anthropic"
    # CrewAI's token-count preflight is kept in the cassette (replay needs it) but is not a call.
    uris = [i["request"]["uri"] for i in yaml.safe_load(_cassette(pytester).read_text())["interactions"]]
    assert [u.rsplit("/v1/", 1)[1] for u in uris] == ["messages/count_tokens", "messages"]
    assert data["llm_calls"] == 1


def test_changed_prompt_fails_fast_with_diff_and_rerecord_command(pytester, provider):
    server = provider([answer("Recorded answer.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    served = len(server.requests)

    # The provider keeps running: replay must not reach it.
    pytester.makepyfile(
        test_crew=crew_test_file(server.openai_base_url, BODY.replace('"AI agents"', '"AI agentz"'))
    )
    started = time.perf_counter()
    result = pytester.runpytest()
    took = time.perf_counter() - started
    result.assert_outcomes(failed=1)
    # Generous for a loaded machine; retrying the miss against a provider would take longer.
    assert took < 10.0, f"a cassette miss took {took:.1f}s"
    result.stdout.fnmatch_lines(
        [
            "*no recorded response for POST http://127.0.0.1:*/v1/chat/completions*",
            "*cassette: cassettes/test_crew/test_research.yaml (record mode: none)*",
            "*pytest 'test_crew.py::test_research' --crewguard-record-mode=rewrite*",
        ]
    )
    out = result.stdout.str()
    assert "-messages[1].content: Current Task: Research AI agents and summarise it" in out
    assert "+messages[1].content: Current Task: Research AI agentz and summarise it" in out
    assert len(server.requests) == served


def test_missing_cassette_in_replay_names_the_record_command(pytester, provider):
    server = provider([answer("never served")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*The cassette does not exist yet*",
            "*pytest 'test_crew.py::test_research' --crewguard-record-mode=once*",
        ]
    )
    assert server.requests == []
    assert not _cassette(pytester).exists()


def test_rewrite_replaces_a_stale_recording(pytester, provider):
    server = provider([answer("First."), answer("Second.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    pytester.runpytest("--crewguard-record-mode=rewrite").assert_outcomes(passed=1)
    data = yaml.safe_load(_cassette(pytester).read_text())
    assert len(data["interactions"]) == 1
    assert "Second." in data["interactions"][0]["response"]["body"]["string"]


def test_marker_record_mode_applies_and_command_line_wins(pytester, provider):
    server = provider([answer("One."), answer("Two.")])
    body = BODY.replace("@pytest.mark.crewguard(max_cost=0.01)", '@pytest.mark.crewguard(record_mode="once")')
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, body))
    pytester.runpytest().assert_outcomes(passed=1)  # the marker records
    assert len(server.llm_requests) == 1
    # The marker's "once" now replays: the provider is not asked again.
    pytester.runpytest().assert_outcomes(passed=1)
    assert len(server.llm_requests) == 1
    # An explicit command-line mode beats the marker: "all" records again, so the provider is
    # asked (kept running: against a stopped one the SDK would retry with backoff for seconds)...
    pytester.runpytest("--crewguard-record-mode=all").assert_outcomes(passed=1)
    assert len(server.llm_requests) == 2
    server.stop()
    # ...and replay-only passes from the cassette, offline.
    pytester.runpytest("--crewguard-record-mode=none").assert_outcomes(passed=1)


def test_recording_keeps_keys_out_of_the_cassette(pytester, provider):
    server = provider([answer("openai"), answer("anthropic")])
    body = """
    def make_anthropic():
        agent = Agent(role="Writer", goal="Write", backstory="Writer",
                      llm=LLM(model="anthropic/claude-haiku-4-5", base_url=ANTHROPIC_URL))
        task = Task(name="write", description="Write", expected_output="Text", agent=agent)
        return Crew(agents=[agent], tasks=[task])

    @pytest.mark.crewguard
    def test_research(crewguard):
        crewguard.kickoff(make_crew, inputs={"topic": "AI"})
        crewguard.kickoff(make_anthropic)
    """
    source = crew_test_file(server.openai_base_url, body).replace(
        "MODEL = ", f"ANTHROPIC_URL = {server.anthropic_base_url!r}\nMODEL = "
    )
    pytester.makepyfile(test_crew=source)
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    # Both keys reached the provider, so the scrubbing is what kept them out.
    sent = " ".join(str(r.headers) for r in server.requests)
    assert FAKE_OPENAI_KEY in sent and FAKE_ANTHROPIC_KEY in sent
    text = _cassette(pytester).read_text()
    assert FAKE_OPENAI_KEY not in text
    assert FAKE_ANTHROPIC_KEY not in text
    assert "authorization" not in text.lower() and "x-api-key" not in text.lower()


def test_a_key_in_a_request_body_refuses_the_cassette(pytester, provider):
    server = provider([answer("ok")])
    body = BODY.replace('"AI agents"', '"the key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"')
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, body))
    result = pytester.runpytest("--crewguard-record-mode=once")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*refused to write cassette cassettes/test_crew/test_research.yaml*"
            "key-shaped string (sk-p…) at line*"
        ]
    )
    assert not _cassette(pytester).exists()


def test_corrupt_cassette_is_one_error_naming_the_file(pytester, provider):
    server = provider([answer("ok")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    path = _cassette(pytester)
    path.parent.mkdir(parents=True)
    path.write_text("interactions: [\n  - request: {method: POST\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*cannot load cassette *test_research.yaml: it is not valid YAML at line*"])
    assert path.read_text() == "interactions: [\n  - request: {method: POST\n"
    assert server.requests == []


AFTER_A_BROKEN_START = """

def test_after():
    # The test that failed to start left nothing behind: no patched sockets, no storage of its own.
    import socket
    from pytest_crewguard import network

    assert socket.socket.connect is network._original_connect
    assert "test_research" not in os.environ["CREWAI_STORAGE_DIR"]
"""


def test_a_guard_that_fails_to_start_leaves_nothing_behind(pytester, provider):
    server = provider([answer("ok")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY + AFTER_A_BROKEN_START))
    path = _cassette(pytester)
    path.parent.mkdir(parents=True)
    path.write_text("interactions: [\n")
    pytester.runpytest().assert_outcomes(errors=1, passed=1)


def test_recorded_latency_is_stored_in_a_form_plain_vcrpy_loads(pytester, provider):
    import vcr

    server = provider([Reply(text="slowish", delay_s=0.3)])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    cassette = vcr.cassette.Cassette.load(path=str(_cassette(pytester)))
    latency = float(cassette.responses[0]["headers"]["x-crewguard-latency-s"][0])
    assert 0.3 <= latency < 2.0


def test_replay_needs_no_api_key(pytester, provider, monkeypatch):
    server = provider([answer("No key needed.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    monkeypatch.delenv("OPENAI_API_KEY")
    pytester.runpytest().assert_outcomes(passed=1)
    assert read_dump(pytester, "research")["raw"] == "No key needed."
    # Recording still needs the real key: the placeholder is for replay only.
    import os

    assert "OPENAI_API_KEY" not in os.environ


APP_THREAD_BODY = """
import threading

job_store = {}


def run_research_job(job_id, topic):
    # The application's own code, as in a FastAPI BackgroundTasks handler.
    result = make_crew().kickoff(inputs={"topic": topic})
    job_store[job_id] = {"status": "complete", "result": str(result)}


@pytest.mark.crewguard(max_llm_calls=LIMIT)
def test_endpoint():
    worker = threading.Thread(target=run_research_job, args=("job-1", "AI agents"))
    worker.start()
    worker.join()
    assert job_store["job-1"]["status"] == "complete"
"""


def test_the_marker_alone_guards_kickoffs_made_by_application_threads(pytester, provider):
    server = provider([answer("Background answer.")])
    pytester.makepyfile(
        test_crew=crew_test_file(server.openai_base_url, APP_THREAD_BODY.replace("LIMIT", "1"))
    )
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    server.stop()
    replayed = pytester.runpytest()
    replayed.assert_outcomes(passed=1)
    replayed.stdout.fnmatch_lines(["*test_crew.py::test_endpoint*1 * 1200 * 300 * $0.000360*passed*"])
    # The same run under a tighter limit fails, though the test never touched the fixture.
    pytester.makepyfile(
        test_crew=crew_test_file(server.openai_base_url, APP_THREAD_BODY.replace("LIMIT", "0"))
    )
    limited = pytester.runpytest()
    limited.assert_outcomes(failed=1)
    limited.stdout.fnmatch_lines(["*1 LLM calls are over max_llm_calls=0*"])


def test_a_cassette_that_cannot_be_written_stops_before_the_provider_is_called(pytester, provider):
    # The calls were made and paid for, then the write at the end failed.
    server = provider([answer("Recorded answer.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    (Path(pytester.path) / "not-a-dir").write_text("a file where the cassette dir should be\n")
    result = pytester.runpytest("--crewguard-record-mode=once", "--crewguard-cassette-dir=not-a-dir")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*crewguard cannot record cassette *not-a-dir/test_crew/test_research.yaml: its directory "
         "cannot be written (*). Nothing was sent to the provider.*--crewguard-cassette-dir*"]
    )
    assert server.requests == []


CUT_SHORT = """
import os


@pytest.mark.crewguard
def test_two(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "first"})
    if os.environ.get("STOP_MIDWAY") == "interrupt":
        raise SystemExit(143)  # a signal's handler exiting, as Ctrl-C's KeyboardInterrupt would
    if os.environ.get("STOP_MIDWAY") == "fail":
        raise RuntimeError("a flaky assertion")
    crewguard.kickoff(make_crew, inputs={"topic": "second"})
"""


def test_a_test_stopped_while_recording_says_what_its_cassette_holds(pytester, provider, monkeypatch):
    # An interrupt under rewrite replaced a whole recording with the part made before it, and
    # the next replay blamed a changed prompt; a failure is written (its calls were paid for),
    # saying so.
    server = provider([answer("First."), answer("Second.")] + [answer("First.")] * 4)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, CUT_SHORT))
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_two.yaml"
    pytester.runpytest("--crewguard-record-mode=once").assert_outcomes(passed=1)
    whole = cassette.read_text()
    monkeypatch.setenv("STOP_MIDWAY", "interrupt")
    stopped = pytester.runpytest("--crewguard-record-mode=rewrite")
    stopped.assert_outcomes(failed=1)
    assert cassette.read_text() == whole
    stopped.stdout.fnmatch_lines([
        "crewguard: 1 test stopped while recording (SystemExit): cassettes/test_crew/test_two.yaml "
        "would hold part of the test's calls, so the one before is kept; record it again"
    ])
    monkeypatch.setenv("STOP_MIDWAY", "fail")
    failed = pytester.runpytest("--crewguard-record-mode=rewrite")
    failed.assert_outcomes(failed=1)
    assert len(yaml.safe_load(cassette.read_text())["interactions"]) == 1
    failed.stdout.fnmatch_lines([
        "crewguard: 1 test failed while recording (RuntimeError): cassettes/test_crew/test_two.yaml holds "
        "the calls made before the failure; if the failure stopped the test early, record it again once "
        "it passes"
    ])
    server.stop()


JSON_CASSETTE = """
@pytest.mark.crewguard(cassette="theirs.json")
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI agents"})
"""


def test_a_json_cassette_is_replayed_but_never_rewritten_as_yaml(pytester, provider):
    server = provider([answer("Summary.")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, JSON_CASSETTE))
    theirs = Path(pytester.path) / "cassettes" / "theirs.json"
    theirs.parent.mkdir()
    theirs.write_text('{"version": 1, "interactions": []}')
    result = pytester.runpytest("--crewguard-record-mode=new_episodes")
    assert result.ret != 0
    result.stdout.fnmatch_lines([
        "*crewguard will not record into cassette *theirs.json: it is a JSON cassette*Nothing was sent "
        "to the provider*",
    ])
    assert theirs.read_text() == '{"version": 1, "interactions": []}'
    assert server.requests == []
    server.stop()
