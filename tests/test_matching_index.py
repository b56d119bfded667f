"""The request index: a replayed request finds its answer without scanning the cassette, with
vcrpy's semantics (recorded order, each interaction answers once), tested in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from vcr.errors import UnhandledHTTPRequestError
from vcr.request import Request

from pytest_crewguard import persister, vcr_setup
from pytest_crewguard.cassette_yaml import ReadableYamlSerializer
from pytest_crewguard.match_config import MatchConfig, config_from_fixture

URL = "https://api.openai.com/v1/chat/completions"


def _body(prompt: str, **extra: Any) -> str:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], **extra})


def _interaction(body: str, answer: str, uri: str = URL, headers: dict[str, list[str]] | None = None) -> Any:
    return {
        "request": {"method": "POST", "uri": uri, "body": body,
                    "headers": {"content-type": ["application/json"], **(headers or {})}},
        "response": {"status": {"code": 200, "message": "OK"},
                     "headers": {"content-type": ["application/json"]},
                     "body": {"string": json.dumps({"answer": answer})}},
    }


def _first_and_second() -> list[Any]:
    return [_interaction(_body("a"), "first"), _interaction(_body("b"), "second")]


def _write(path: Path, interactions: list[Any]) -> Path:
    path.write_text(ReadableYamlSerializer.serialize({"version": 1, "interactions": interactions}))
    return path


@contextmanager
def _opened(path: Path, config: MatchConfig | None = None, mode: str = "none") -> Iterator[Any]:
    with vcr_setup.cassette(path, mode, config) as cassette:
        yield cassette


def _ask(cassette: Any, body: str, uri: str = URL, headers: dict[str, str] | None = None) -> str:
    request = Request("POST", uri, body, {"content-type": "application/json", **(headers or {})})
    assert cassette.can_play_response_for(request)
    answer: str = json.loads(cassette.play_response(request)["body"]["string"])["answer"]
    return answer


def test_identical_requests_answer_in_recorded_order_each_once(tmp_path: Path) -> None:
    same = _body("hello")
    path = _write(tmp_path / "c.yaml", [_interaction(same, "first"), _interaction(_body("other"), "x"),
                                        _interaction(same, "second"), _interaction(same, "third")])
    with _opened(path) as cassette:
        assert [_ask(cassette, same) for _ in range(3)] == ["first", "second", "third"]
        request = Request("POST", URL, same, {})
        assert not cassette.can_play_response_for(request)
        with pytest.raises(UnhandledHTTPRequestError):
            cassette.play_response(request)
        assert dict(cassette.play_counts) == {0: 1, 2: 1, 3: 1}
        # What drop_unused_requests keeps: the played recordings, in the order they played.
        assert [json.loads(r["body"]["string"])["answer"] for _, r in cassette._played_interactions] == [
            "first", "second", "third",
        ]


def test_a_changed_body_misses_and_key_order_or_volatile_fields_do_not(tmp_path: Path) -> None:
    recorded = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": "a"})
    path = _write(tmp_path / "c.yaml", [_interaction(recorded, "ok"), _interaction(recorded, "again")])
    with _opened(path) as cassette:
        same_meaning = json.dumps(
            {"messages": [{"content": "hi", "role": "user"}], "model": "m", "user": "b"}
        )
        assert _ask(cassette, same_meaning) == "ok"
        changed = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi!"}]})
        assert not cassette.can_play_response_for(Request("POST", URL, changed, {}))
        with pytest.raises(UnhandledHTTPRequestError):
            cassette.play_response(Request("POST", URL, changed, {}))
        other_path = Request("POST", "https://api.openai.com/v1/embeddings", recorded, {})
        assert not cassette.can_play_response_for(other_path)


def test_a_hit_does_not_scan_the_cassette(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interactions = [_interaction(_body(f"prompt {i}"), f"answer {i}") for i in range(200)]
    path = _write(tmp_path / "c.yaml", interactions)
    with _opened(path) as cassette:

        def no_scan(*args: Any) -> bool:
            raise AssertionError("a request was compared with the recordings one by one")

        import vcr.cassette
        import vcr.matchers

        monkeypatch.setattr(vcr.matchers, "requests_match", no_scan)
        monkeypatch.setattr(vcr.cassette, "requests_match", no_scan)
        assert _ask(cassette, _body("prompt 199")) == "answer 199"
        assert _ask(cassette, _body("prompt 3")) == "answer 3"


def test_a_request_sent_as_recorded_is_keyed_without_parsing_its_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = _body("hello", temperature=0)
    reordered = json.dumps({"temperature": 0, **json.loads(_body("hello"))})
    path = _write(tmp_path / "c.yaml", [_interaction(recorded, "first"), _interaction(recorded, "second")])
    with _opened(path) as cassette:
        from pytest_crewguard import request_index

        parsed: list[Any] = []
        real = request_index.normalised_body
        monkeypatch.setattr(request_index, "normalised_body", lambda *a: parsed.append(a) or real(*a))
        assert _ask(cassette, recorded) == "first"
        assert parsed == []  # the bytes were the recording's: its key, remembered from loading
        assert _ask(cassette, reordered) == "second"  # other bytes, same JSON: parsed, same key
        assert len(parsed) == 1


def test_the_index_keys_on_the_scrubbed_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "s3cret-value-123456")
    recorded_uri = "https://generativelanguage.googleapis.com/v1/models/m:generate?key=crewguard-scrubbed"
    body = _body("scrubbed")
    path = _write(tmp_path / "c.yaml", [_interaction(body, "ok", uri=recorded_uri)])
    with _opened(path) as cassette:
        live_uri = "https://generativelanguage.googleapis.com/v1/models/m:generate?key=s3cret-value-123456"
        assert _ask(cassette, body, uri=live_uri, headers={"x-goog-api-key": "s3cret-value-123456"}) == "ok"


def test_body_blind_match_on_answers_in_recorded_order(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", _first_and_second())
    with _opened(path, config_from_fixture({"match_on": ["method", "path"]}, None)) as cassette:
        assert _ask(cassette, _body("something else")) == "first"
        assert _ask(cassette, _body("and another")) == "second"


def test_a_projects_matcher_is_applied_within_the_key(tmp_path: Path) -> None:
    body = _body("same")
    path = _write(tmp_path / "c.yaml", [_interaction(body, "for-a", headers={"x-tenant": ["a"]}),
                                        _interaction(body, "for-b", headers={"x-tenant": ["b"]})])

    def tenant(r1: Any, r2: Any) -> None:
        assert r1.headers.get("x-tenant") == r2.headers.get("x-tenant")

    config = config_from_fixture({"matchers": {"tenant": tenant}}, None)
    with _opened(path, config) as cassette:
        assert _ask(cassette, body, headers={"x-tenant": "b"}) == "for-b"
        assert _ask(cassette, body, headers={"x-tenant": "a"}) == "for-a"
        assert not cassette.can_play_response_for(Request("POST", URL, body, {"x-tenant": "a"}))


def test_vcrpys_own_body_matcher_falls_back_to_comparing(tmp_path: Path) -> None:
    path = _write(tmp_path / "c.yaml", _first_and_second())
    config = config_from_fixture({"match_on": ["method", "uri", "body"]}, None)
    with _opened(path, config) as cassette:
        assert _ask(cassette, _body("b")) == "second"
        assert not cassette.can_play_response_for(Request("POST", URL, _body("c"), {}))


def test_a_headers_matcher_compares_the_scrubbed_headers(tmp_path: Path) -> None:
    # Recorded without its credential header (scrubbed when written); sent with one.
    body = _body("q")
    path = _write(tmp_path / "c.yaml", [_interaction(body, "ok")])
    config = config_from_fixture({"match_on": ["method", "uri", "headers"]}, None)
    with _opened(path, config) as cassette:
        sent = {"authorization": "Bearer sk-live-0123456789abcdef"}
        assert _ask(cassette, body, headers=sent) == "ok"


def test_a_cassette_is_parsed_once_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "c.yaml", [_interaction(_body("a"), "first")])
    parsed: list[Path] = []
    real_parse = persister._parse

    def counting(file: Path, text: str, serializer: Any) -> list[Any]:
        parsed.append(file)
        return real_parse(file, text, serializer)

    monkeypatch.setattr(persister, "_parse", counting)
    for _ in range(3):
        with _opened(path) as cassette:
            assert _ask(cassette, _body("a")) == "first"  # each load answers afresh
    assert len(parsed) == 1
    _write(path, [_interaction(_body("a"), "rewritten answer")])
    with _opened(path) as cassette:
        assert _ask(cassette, _body("a")) == "rewritten answer"
    assert len(parsed) == 2


def test_a_live_request_matches_scrubbed_and_is_left_as_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recorded scrubbed; the live request carries the key in a header and in its body.
    secret = "sk-live-" + "x" * 40
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    recorded = json.dumps({"model": "gpt-4o-mini", "note": "PLACEHOLDER"})
    scrubbed = recorded.replace("PLACEHOLDER", "crewguard-scrubbed")
    path = _write(tmp_path / "c.yaml", [_interaction(scrubbed, "ok")])
    live_body = recorded.replace("PLACEHOLDER", secret).encode()
    headers = {"authorization": f"Bearer {secret}", "content-type": "application/json"}
    request = Request("POST", URL, live_body, headers)
    with _opened(path) as cassette:
        answer = cassette.play_response(request)["body"]["string"]
        assert json.loads(answer)["answer"] == "ok"
    # What the client sends must not change because the cassette compared a scrubbed copy.
    assert request.body == live_body
    assert request.headers["authorization"] == f"Bearer {secret}"
