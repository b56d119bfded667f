"""Matching rules, miss diagnosis and stand-in answers, tested in-process on vcrpy requests."""

from __future__ import annotations

import difflib
import json

import pytest
from vcr.request import Request

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.match_config import DEFAULT_MATCH_ON, config_from_fixture, parse_match_on
from pytest_crewguard.matching import body_diff, body_matcher_for, nearest_request, normalising
from pytest_crewguard.stand_ins import is_telemetry, stand_in_kind, stand_in_response


def _req(body: object, uri: str = "https://api.openai.com/v1/chat/completions") -> Request:
    text = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return Request("POST", uri, text, {})


def test_an_empty_list_and_an_absent_field_differ_in_the_diff() -> None:
    recorded = _req({"model": "gpt-4o-mini", "stop": []})
    live = _req({"model": "gpt-4o-mini"})
    diff = body_diff(recorded, live)
    assert "-stop: []" in diff
    assert not diff.startswith("(bodies are equal")


def test_nearest_request_skips_telemetry_and_binary_bodies() -> None:
    live = _req({"messages": [{"role": "user", "content": "hello there"}]})
    telemetry = _req({"messages": [{"role": "user", "content": "hello there"}]}, "https://telemetry.crewai.com/v1/traces")
    binary = Request("POST", "https://api.openai.com/v1/chat/completions", b"\x0a\xff\xfe\x00", {})
    other = _req({"messages": [{"role": "user", "content": "goodbye"}]})
    assert nearest_request(live, [telemetry, binary, other]) is other
    assert nearest_request(live, [telemetry, binary]) is None


def _conversation(turns: int, topic: str) -> Request:
    messages = [{"role": "user", "content": f"{topic}: step {k}"} for k in range(turns)]
    return _req({"model": "gpt-4o-mini", "messages": messages})


def test_the_nearest_of_many_long_conversations_is_found_with_few_exact_comparisons(monkeypatch) -> None:
    # The exact similarity is quadratic in a body's lines: it is computed for the few
    # candidates whose linear upper bound is highest, not for all 300.
    exact = []
    ratio = difflib.SequenceMatcher.ratio
    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", lambda self: exact.append(1) or ratio(self))
    candidates = [_conversation(40, f"topic {n}") for n in range(300)]
    target = _conversation(40, "topic 217")
    live = _req({"model": "gpt-4o-mini", "messages": json.loads(target.body)["messages"][:-1]})
    assert nearest_request(live, candidates) is candidates[217]
    assert 1 <= len(exact) <= 5


def test_candidates_whose_bound_misleads_do_not_hide_the_nearest() -> None:
    # Shuffled copies share every line with the request (the highest bound) but little order;
    # the one-line change comes sixth by bound and is still found.
    import random

    steps = [f"step {i}" for i in range(20)]

    def sent(lines: list[str]) -> Request:
        return _req({"prompt": "\n".join(lines)})

    shuffled = []
    for seed in range(5):
        order = steps[:]
        random.Random(seed).shuffle(order)
        shuffled.append(sent(order))
    close = sent([*steps[:-1], "step changed"])
    assert nearest_request(sent(steps), [*shuffled, close]) is close


def test_equal_candidates_give_the_earliest_and_the_same_endpoint_wins() -> None:
    live = _conversation(3, "plan")
    first, second = _conversation(3, "plan"), _conversation(3, "plan")
    elsewhere = _req(json.loads(live.body), "https://api.openai.com/v1/responses")
    assert nearest_request(live, [elsewhere, first, second]) is first


def test_ignored_body_fields_and_query_parameters_take_no_part() -> None:
    config = config_from_fixture(
        {"ignore_body_fields": ["max_tokens"], "ignore_query_params": ["api-version"]}, None
    )
    body = body_matcher_for(config)
    body(_req({"model": "m", "max_tokens": 10}), _req({"model": "m", "max_tokens": 99}))
    with pytest.raises(AssertionError):
        body(_req({"model": "m"}), _req({"model": "n"}))

    def query(r1: Request, r2: Request) -> None:
        assert r1.query == r2.query

    query_matcher = normalising(query, config)
    query_matcher(
        _req({}, "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-02-01"),
        _req({}, "https://x.openai.azure.com/openai/deployments/d/chat/completions?API-Version=2025-01-01"),
    )
    with pytest.raises(AssertionError):
        query_matcher(_req({}, "https://h/p?a=1"), _req({}, "https://h/p?a=2"))


def test_rewritten_hosts_match_across_regions() -> None:
    config = config_from_fixture(
        {"rewrite_hosts": {r"bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com": "bedrock-runtime.amazonaws.com"}},
        None,
    )

    def host(r1: Request, r2: Request) -> None:
        assert r1.host == r2.host

    matcher = normalising(host, config)
    matcher(
        _req({}, "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"),
        _req({}, "https://bedrock-runtime.eu-west-3.amazonaws.com/model/m/converse"),
    )
    with pytest.raises(AssertionError):
        matcher(_req({}, "https://api.openai.com/x"), _req({}, "https://api.anthropic.com/x"))


def test_match_on_names_are_checked() -> None:
    assert parse_match_on("method, path", "ini crewguard_match_on") == ("method", "path")
    with pytest.raises(ConfigError, match="unknown matcher 'paht' \\(did you mean 'path'\\?\\)"):
        parse_match_on(["method", "paht"], "argument match_on")
    with pytest.raises(ConfigError, match="at least one matcher"):
        parse_match_on([], "argument match_on")


def test_project_config_is_checked_and_marker_match_on_wins() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'ignore_query' .did you mean 'ignore_query_params'"):
        config_from_fixture({"ignore_query": ["a"]}, None)
    with pytest.raises(ConfigError, match="it must return a dict"):
        config_from_fixture(["method"], None)
    with pytest.raises(ConfigError, match="bad regex"):
        config_from_fixture({"rewrite_hosts": {"(": "x"}}, None)
    assert config_from_fixture({}, None).match_on == DEFAULT_MATCH_ON
    assert config_from_fixture({}, None).checks_body
    blind = config_from_fixture({"match_on": ["method", "path"]}, None)
    assert not blind.checks_body
    assert config_from_fixture({"match_on": ["method", "path"]}, ("method",)).match_on == ("method",)
    custom = config_from_fixture({"matchers": {"model": lambda a, b: None}, "match_on": ["method"]}, None)
    assert custom.match_on == ("method", "model")


def test_stand_ins_by_kind() -> None:
    assert is_telemetry("https://telemetry.crewai.com:4319/v1/traces")
    assert is_telemetry("http://localhost:4318/v1/metrics")
    assert not is_telemetry("https://api.openai.com/v1/chat/completions")
    assert stand_in_kind("POST", "https://app.crewai.com/crewai_plus/api/v1/tracing/batches") == "telemetry"
    assert stand_in_kind("POST", "https://api.anthropic.com/v1/messages/count_tokens") == "preflight"
    assert stand_in_kind("POST", "https://api.openai.com/v1/responses/input_tokens") == "preflight"
    assert stand_in_kind("POST", "https://api.openai.com/v1/chat/completions") == "miss"

    miss = stand_in_response("miss", "cassettes/t.yaml")
    assert miss["status"]["code"] == 400
    # SDKs that honour it must not retry: a miss stays fast.
    assert miss["headers"]["x-should-retry"] == ["false"]
    body = json.loads(miss["body"]["string"])
    assert "cassettes/t.yaml" in body["error"]["message"] and body["type"] == "error"
    assert stand_in_response("preflight", "c")["status"]["code"] == 404
    assert stand_in_response("telemetry", "c")["status"]["code"] == 200


def test_methods_match_whatever_their_case() -> None:
    from pytest_crewguard.matching import method_matcher

    method_matcher(Request("post", "https://h/p", "", {}), Request("POST", "https://h/p", "", {}))
    with pytest.raises(AssertionError):
        method_matcher(Request("GET", "https://h/p", "", {}), Request("POST", "https://h/p", "", {}))
