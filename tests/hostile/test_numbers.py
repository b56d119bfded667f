"""Numbers that must never lie: a call without usage is never 0 tokens and $0, totals over
unknown numbers say so, absurd counts in a cassette cannot crash or inflate anything, and the
report's wording fits what happened."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_crewguard.events import EventLog
from pytest_crewguard.ledger import LLMCall, build_calls
from pytest_crewguard.limits import total_violations
from pytest_crewguard.marker import GuardSpec
from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.report import report_data, table
from pytest_crewguard.session import CrewguardSession, GuardedTest
from pytest_crewguard.usage import Usage, classify_exchange
from pytest_crewguard.wire import HttpExchange

PRICES = PriceTable()


def _wire(
    body: str, status: int = 200, url: str = "https://api.openai.com/v1/chat/completions"
) -> HttpExchange:
    headers: dict[str, Any] = {"Content-Type": ["application/json"]}
    exchange = classify_exchange("POST", url, '{"model": "gpt-4o-mini"}', status, headers, body)
    return HttpExchange(
        index=0,
        method="POST",
        uri=url,
        request_body='{"model": "gpt-4o-mini"}',
        status=status,
        response_headers=headers,
        response_body=body,
        scope=(),
        recorded_latency_s=0.5,
        replayed=True,
        exchange=exchange,
    )


def _calls(*wires: HttpExchange) -> list[LLMCall]:
    return build_calls(wires, EventLog(), PRICES, [])


KNOWN = '{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}'
NO_USAGE = '{"model": "gpt-4o-mini", "choices": [{"message": {"content": "hi"}}]}'
KNOWN_COST = 1000 * 0.15e-6 + 100 * 0.60e-6  # gpt-4o-mini: $0.15 / $0.60 per million


# --- a call without usage ---------------------------------------------------------------------


def test_a_call_without_usage_is_unknown_not_zero() -> None:
    (call,) = _calls(_wire(NO_USAGE))
    assert call.usage_known is False
    assert (call.input_tokens, call.output_tokens, call.tokens, call.cost) == (None, None, None, None)
    assert call.priced is True  # the model has a price; its usage is what is missing


def test_a_rejected_request_is_a_known_zero() -> None:
    body = '{"error": {"message": "The model `nope` does not exist", "type": "invalid_request_error"}}'
    (call,) = _calls(_wire(body, status=404))
    assert (call.usage_known, call.input_tokens, call.output_tokens, call.cost) == (True, 0, 0, 0.0)
    assert call.priced  # nothing was billed, so nothing needs a price


@pytest.mark.parametrize(
    ("marker", "gates"),
    [
        ({"max_cost": 1.0}, ["usage_unknown"]),
        ({"max_tokens": 10**9}, ["usage_unknown"]),
        ({"max_cost": 1.0, "max_tokens": 10**9}, ["usage_unknown"]),
        ({"max_cost": 0.0001}, ["usage_unknown", "max_cost"]),  # the known part alone is over
        ({"max_llm_calls": 5}, []),  # no cost or token gate: nothing to refuse
        ({}, []),
    ],
)
def test_cost_and_token_gates_refuse_unknown_usage(marker: dict[str, Any], gates: list[str]) -> None:
    calls = _calls(_wire(KNOWN), _wire(NO_USAGE))
    found = total_violations(GuardSpec(**marker), calls)
    assert [v.gate for v in found] == gates
    messages = "\n".join(v.message for v in found)
    if "usage_unknown" in gates:
        assert "1 LLM call had no readable usage in the response" in messages
        assert "gpt-4o-mini - / -  https://api.openai.com/v1/chat/completions" in messages
        assert "include_usage" in messages and "a stream cut off before that chunk" in messages
    if "max_cost" in gates:
        assert f"cost ≥${KNOWN_COST:.6f} is over max_cost=$0.000100" in messages


def _session(*records: GuardedTest, budget: float | None = None) -> CrewguardSession:
    session = CrewguardSession(prices=PRICES, budget=budget)
    for record in records:
        session.add(record)
    return session


def test_table_and_totals_never_show_unknown_as_zero() -> None:
    mixed = GuardedTest.build("t.py::mixed", _calls(_wire(KNOWN), _wire(NO_USAGE)), [])
    blind = GuardedTest.build("t.py::blind", _calls(_wire(NO_USAGE)), [])
    text = table(_session(mixed, blind))
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("t.py", "TOTAL"))}
    assert f"≥${KNOWN_COST:.6f} (1 without usage)" in rows["t.py::mixed"]
    assert re.search(r"\s≥1000\s+≥100\s", rows["t.py::mixed"])
    assert "unknown (no usage)" in rows["t.py::blind"]
    assert re.search(r"\s1\s+unknown\s+unknown\s", rows["t.py::blind"])
    assert "$0.000000" not in text
    assert re.search(rf"TOTAL \(2 tests\)\s+3\s+≥1000\s+≥100\s+≥\${KNOWN_COST:.6f}", text)
    assert "usage unknown: 2 LLM calls in 2 tests had no readable usage block" in text


def test_report_json_says_the_cost_is_not_exact() -> None:
    record = GuardedTest.build("t.py::mixed", _calls(_wire(KNOWN), _wire(NO_USAGE)), [])
    data = report_data(_session(record))
    assert data["totals"]["cost_exact"] is False
    assert data["totals"]["usage_unknown"] == 1
    test = data["tests"]["t.py::mixed"]
    assert (test["cost_exact"], test["usage_unknown"]) == (False, 1)
    assert test["calls"][1]["input_tokens"] is None and test["calls"][1]["cost"] is None
    # the xdist controller rebuilds records from this JSON
    again = GuardedTest.from_json(json.loads(json.dumps(test)))
    assert (again.cost_exact, again.usage_unknown, again.cost) == (False, 1, record.cost)


def test_session_budget_cannot_pass_on_unknown_usage() -> None:
    record = GuardedTest.build("t.py::mixed", _calls(_wire(KNOWN), _wire(NO_USAGE)), [])
    session = _session(record, budget=1.0)
    assert session.over_budget is None
    problem = session.budget_unknown()
    assert problem is not None and "t.py::mixed" in problem
    assert "1 LLM call(s) had no readable usage" in problem
    assert "session budget: ≥$" in table(session) and "(unknown: " in table(session)
    assert (
        _session(GuardedTest.build("t.py::known", _calls(_wire(KNOWN)), []), budget=1.0).budget_unknown()
        is None
    )


# --- free, singular, footnotes ------------------------------------------------------------


def test_a_free_model_shows_as_free() -> None:
    body = json.dumps(
        {
            "modelVersion": "gemma-3-27b-it",
            "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 4},
        }
    )
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemma-3-27b-it:generateContent"
    record = GuardedTest.build("t.py::gemma", _calls(_wire(body, url=url)), [])
    assert record.free_models == ["gemma-3-27b-it"]
    text = table(_session(record))
    row = next(line for line in text.splitlines() if line.startswith("t.py::gemma"))
    assert " free " in row and "$0.000000" not in row
    assert "free: gemma-3-27b-it (listed at $0 by the price data)" in text


def test_token_kinds_are_shown_under_the_table() -> None:
    usage = {
        "input_tokens": 3,
        "cache_read_input_tokens": 1217,
        "cache_creation_input_tokens": 40,
        "output_tokens": 5,
    }
    body = json.dumps({"model": "claude-sonnet-4-5", "usage": usage})
    record = GuardedTest.build(
        "t.py::cached", _calls(_wire(body, url="https://api.anthropic.com/v1/messages")), []
    )
    assert (record.input_tokens, record.cached_tokens, record.cache_write_tokens) == (1260, 1217, 40)
    assert "of the tokens: cache reads 1217, cache writes 40 (included in the in/out tok columns)" in table(
        _session(record)
    )
    assert "of the tokens" not in table(_session(GuardedTest.build("t.py::plain", _calls(_wire(KNOWN)), [])))


def test_one_test_is_singular_and_a_test_without_calls_has_no_latency_footnote() -> None:
    text = table(_session(GuardedTest("t.py::failed_before_any_call", outcome="failed")))
    assert "TOTAL (1 test)" in text
    assert "projected n/a" not in text


# --- absurd numbers in a cassette -------------------------------------------------------------


CHAT = "https://api.openai.com/v1/chat/completions"


@pytest.mark.parametrize(
    "value", ["1e400", "NaN", "Infinity", "-Infinity", "1e300", "-3", "true", '"12"', "null", "738.5"]
)
@pytest.mark.parametrize(
    ("url", "body"),
    [
        (CHAT, '{"usage": {"prompt_tokens": V, "completion_tokens": 3}}'),
        (CHAT, '{"usage": {"prompt_tokens": 5, "completion_tokens": V}}'),
        ("https://api.openai.com/v1/responses", '{"usage": {"input_tokens": V, "output_tokens": 3}}'),
        ("https://api.anthropic.com/v1/messages", '{"usage": {"input_tokens": 5, "output_tokens": V}}'),
        ("https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse",
         '{"usage": {"inputTokens": V, "outputTokens": 3}}'),
        ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent",
         '{"usageMetadata": {"promptTokenCount": V, "candidatesTokenCount": 3}}'),
        ("http://localhost:11434/api/chat", '{"prompt_eval_count": 5, "eval_count": V}'),
    ],
)
def test_an_absurd_main_count_makes_the_usage_unknown_never_zero(value: str, url: str, body: str) -> None:
    # A string "738", a negative or a NaN token count read as 0 let a cost gate pass on $0.
    ex = classify_exchange("POST", url, None, 200, {}, body.replace("V", value))
    assert ex.kind == "llm"
    assert ex.usage is None


def test_an_absent_count_or_absurd_detail_still_reads() -> None:
    # Some OpenAI-compatible servers leave out a count they have not got; details stay 0.
    details = '"prompt_tokens_details": {"cached_tokens": -1}'
    body = '{"usage": {"completion_tokens": 3, ' + details + "}}"
    assert classify_exchange("POST", CHAT, None, 200, {}, body).usage == Usage(0, 3)


def test_parts_larger_than_the_whole_are_clamped_and_priced() -> None:
    usage = Usage(
        10, 5, cached_tokens=100, cache_write_tokens=50, cache_write_1h_tokens=70, reasoning_tokens=9
    )
    assert usage == Usage(
        10, 5, cached_tokens=10, cache_write_tokens=0, cache_write_1h_tokens=0, reasoning_tokens=5
    )
    # genai-prices refuses cache reads above the input; the clamp keeps every call priceable
    assert PRICES.cost("anthropic", "claude-haiku-4-5", usage) == pytest.approx(10 * 0.10e-6 + 5 * 5e-6)


def test_anthropic_split_larger_than_the_total_is_clamped() -> None:
    usage = {
        "input_tokens": 1,
        "cache_creation_input_tokens": 10,
        "cache_creation": {"ephemeral_1h_input_tokens": 10**6},
    }
    body = json.dumps({"model": "claude-haiku-4-5", "usage": {**usage, "output_tokens": 1}})
    ex = classify_exchange("POST", "https://api.anthropic.com/v1/messages", None, 200, {}, body)
    assert ex.usage == Usage(11, 1, cache_write_tokens=10, cache_write_1h_tokens=10)


def test_bedrock_header_counts_of_absurd_length_are_ignored() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/meta.llama3-8b-instruct-v1:0/invoke"
    headers = {"x-amzn-bedrock-input-token-count": ["9" * 400], "x-amzn-bedrock-output-token-count": ["3"]}
    ex = classify_exchange("POST", url, None, 200, headers, "{}")
    assert (ex.kind, ex.usage) == ("llm", None)


def test_truncated_event_stream_frames_never_raise() -> None:
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/m/converse-stream"
    headers = {"Content-Type": ["application/vnd.amazon.eventstream"]}
    for body in (b"\x00\x00\x00\x20\x00\x00\xff\xff" + b"\x00" * 24, b"\xff" * 64, b"\x00" * 16):
        ex = classify_exchange("POST", url, None, 200, headers, body)
        assert (ex.kind, ex.usage) == ("llm", None)


def test_deeply_nested_json_never_raises() -> None:
    body = "[" * 100_000 + "]" * 100_000
    ex = classify_exchange("POST", "https://api.openai.com/v1/chat/completions", None, 200, {}, body)
    assert (ex.kind, ex.usage) == ("llm", None)


def test_price_file_alias_errors_name_the_alias(tmp_path: Path) -> None:
    from pytest_crewguard.errors import ConfigError

    prices = tmp_path / "prices.yaml"
    prices.write_text("aliases:\n  prod-chat: [gpt-4o]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alias 'prod-chat' must name a model"):
        PriceTable.from_file(prices)
    prices.write_text("aliases: {prod-chat: gpt-4o}\nmy-model: {input: 1, output: 2}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"put the prices under a top-level 'models' key"):
        PriceTable.from_file(prices)


# --- end to end: a real crew replaying a cassette without usage -------------------------------

USAGE_TESTS = """
@pytest.mark.crewguard({marker})
def test_research(crewguard):
    run = crewguard.kickoff(make_crew, inputs={{"topic": "AI agents"}})
    dump(run, "run")


@pytest.mark.crewguard()
def test_fails_before_any_call(crewguard):
    raise RuntimeError("the app failed before kicking off")
"""


def test_a_replayed_response_without_usage_fails_the_cost_gate(
    pytester: pytest.Pytester, provider: Any
) -> None:
    from tests.conftest import answer, crew_test_file, read_dump

    server = provider([answer("Agents plan.", input_tokens=1200, output_tokens=300)])
    source = crew_test_file(server.openai_base_url, USAGE_TESTS.format(marker=""))
    pytester.makepyfile(test_crew=source)
    pytester.runpytest("--crewguard-record-mode=once", "-p", "no:warnings").assert_outcomes(
        passed=1, failed=1
    )
    server.stop()
    # What a provider that omits usage (or a stream recorded without it) leaves in the cassette.
    (cassette,) = Path(pytester.path, "cassettes").rglob("test_research.yaml")
    data = yaml.safe_load(cassette.read_text(encoding="utf-8"))
    for interaction in data["interactions"]:
        body = json.loads(interaction["response"]["body"]["string"])
        if "usage" in body:
            body["usage"] = None
            interaction["response"]["body"]["string"] = json.dumps(body)
    cassette.write_text(yaml.safe_dump(data), encoding="utf-8")

    ungated = pytester.runpytest("-p", "no:warnings")
    ungated.assert_outcomes(passed=1, failed=1)
    run = read_dump(pytester, "run")
    assert run["calls"][0]["input_tokens"] is None and run["calls"][0]["cost"] is None
    assert run["calls"][0]["usage_known"] is False
    out = ungated.stdout.str()
    research = next(line for line in out.splitlines() if line.startswith("test_crew.py::test_research"))
    assert re.search(r"\s1\s+unknown\s+unknown\s+unknown \(no usage\)\s", research)
    assert re.search(r"TOTAL \(2 tests\)\s+1\s+unknown\s+unknown\s+unknown\s", out)
    assert "usage unknown: 1 LLM call in 1 test had no readable usage block" in out
    assert "TOTAL (2 tests)" in out and "projected n/a" not in out

    pytester.makepyfile(
        test_crew=crew_test_file(server.openai_base_url, USAGE_TESTS.format(marker="max_cost=1.0"))
    )
    gated = pytester.runpytest("-p", "no:warnings", "-k", "test_research")
    gated.assert_outcomes(failed=1)
    out = gated.stdout.str()
    assert "crewguard: max_cost=$1.000000 is set but 1 LLM call had no readable usage in the response" in out
    assert "FAILED usage_unknown" in out


def test_an_error_answer_the_sdk_retried_is_not_an_agent_round() -> None:
    # A recorded 429 and its successful retry share the agent's LLM call: one round, not two
    # (max_iterations counted the 429 too).
    from pytest_crewguard.events import CrewEvent

    events = EventLog()
    events.add(CrewEvent(event_id="llm-1", type="llm_call_started", sequence=1, parent_id=None,
                         agent_role="Researcher", task_name="research"))
    scope = (("llm-1", "llm_call_started"),)
    limited = _wire('{"error": {"message": "Rate limit", "type": "rate_limit"}}', status=429)
    answered = _wire(KNOWN)
    exchanges = [replace(limited, scope=scope), replace(answered, index=1, scope=scope)]
    calls = build_calls(exchanges, events, PRICES, [])
    assert [(c.status, c.agent_round) for c in calls] == [(429, False), (200, True)]
    assert calls[1].agent == "Researcher"


def test_calls_of_a_kickoff_that_outlived_its_test_are_told_from_lost_events(monkeypatch) -> None:
    # A kickoff an earlier test left running sends calls during this one: its start event is
    # in no log of this test, but crewguard saw it start. That is not "handlers removed".
    from pytest_crewguard import events as crew_events
    from pytest_crewguard.blind_spots import calls_without_events
    from pytest_crewguard.events import CrewEvent

    monkeypatch.setattr(crew_events, "_kickoffs_seen", {"k-earlier": None, "k-here": None})
    log = EventLog()
    log.add(CrewEvent(event_id="k-here", type="crew_kickoff_started", sequence=1, parent_id=None))
    log.add(CrewEvent(event_id="a-here", type="agent_execution_started", sequence=2, parent_id="k-here"))

    def call(*scope: tuple[str, str]) -> HttpExchange:
        return replace(_wire(KNOWN), scope=scope)

    earlier = call(("k-earlier", "crew_kickoff_started"))
    unseen = call(("k-unseen", "crew_kickoff_started"))
    midway = call(("k-here", "crew_kickoff_started"), ("a-here", "agent_execution_started"),
                  ("l-lost", "llm_call_started"))
    fine = call(("k-here", "crew_kickoff_started"), ("a-here", "agent_execution_started"))
    assert calls_without_events([earlier, unseen, midway, fine], log) == (2, 1)


def test_kickoffs_seen_from_many_handler_threads_at_once_lose_none(monkeypatch) -> None:
    # CrewAI runs handlers on a pool: evicting the oldest while another thread added raised
    # "dictionary changed size during iteration", and that event never reached the test's log.
    import sys
    import threading
    from types import SimpleNamespace

    from pytest_crewguard import events as crew_events

    monkeypatch.setattr(crew_events, "_kickoffs_seen", {})
    monkeypatch.setattr(crew_events, "_KICKOFFS_KEPT", 50)
    monkeypatch.setattr(crew_events, "_active", None)
    errors: list[BaseException] = []

    def handler(worker: int) -> None:
        for n in range(5000):
            event = SimpleNamespace(type="crew_kickoff_started", event_id=f"{worker}-{n}")
            try:
                crew_events._collect(None, event)
            except Exception as err:
                errors.append(err)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=handler, args=(w,)) for w in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [] and len(crew_events._kickoffs_seen) == 50


def test_a_compressed_body_that_would_unpack_past_the_limit_is_not_unpacked() -> None:
    import gzip

    from pytest_crewguard.usage import decoding

    answer = b'{"usage": {"prompt_tokens": 5, "completion_tokens": 3}}'
    small = gzip.compress(answer)
    assert decoding.decompress(small, "gzip") == answer
    # A body of zeros after the answer: it would unpack far past what any answer holds.
    bomb = gzip.compress(answer + b" " * (decoding.MAX_INFLATED + 1))
    assert len(bomb) < decoding.MAX_INFLATED // 500
    assert decoding.decompress(bomb, "gzip") is bomb  # left packed: its usage is then unknown
    ex = classify_exchange("POST", CHAT, None, 200, {"content-encoding": ["gzip"]}, bomb)
    assert ex.kind == "llm" and ex.usage is None
