"""What a cassette miss says, in-process: the request sent again after its answer is told
apart from a request that changed, and the diff names what changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from vcr.request import Request

from pytest_crewguard import miss_message, vcr_setup
from pytest_crewguard.cassette_yaml import ReadableYamlSerializer
from pytest_crewguard.wire import WireLog

URL = "https://api.openai.com/v1/chat/completions"


def _body(prompt: str) -> str:
    return json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})


def _request(prompt: str, method: str = "POST") -> Any:
    return Request(method, URL, _body(prompt), {"content-type": "application/json"})


def _misses(
    tmp_path: Path,
    recorded: list[str],
    sent: list[Any],
    first_answer: dict[str, Any] | None = None,
    shared: bool = False,
) -> list[str]:
    """Replay ``sent`` against a cassette of ``recorded`` prompts; the miss messages."""
    interactions = [
        {
            "request": {"method": "POST", "uri": URL, "body": _body(prompt),
                        "headers": {"content-type": ["application/json"]}},
            "response": {"status": {"code": 200, "message": "OK"}, "headers": {},
                         "body": {"string": json.dumps({"answer": prompt})}},
        }
        for prompt in recorded
    ]
    if first_answer is not None:
        interactions[0]["response"] = first_answer
    path = tmp_path / "c.yaml"
    path.write_text(ReadableYamlSerializer.serialize({"version": 1, "interactions": interactions}))
    with vcr_setup.cassette(path, "none") as cassette:
        wire = WireLog(cassette, nodeid="t.py::test_x", record_mode="none", cassette_path="c.yaml",
                       cassette_exists=True, shared=shared)
        cassette.wire = wire
        for request in sent:
            cassette.play_response(request)
    return wire.misses


def test_a_request_sent_again_after_its_answer_says_so_before_the_diff(tmp_path: Path) -> None:
    # An SDK that could not use the first answer sends the request again: the cause is there,
    # not in the third interaction the run never reached.
    [message] = _misses(tmp_path, ["plan", "search", "answer"], [_request("plan"), _request("plan")])
    lines = message.splitlines()
    assert lines[0] == f"crewguard: no recorded response for POST {URL}"
    expected = "The same request was recorded (interaction 1 of 3) and already answered: this run sent it"
    assert expected in message
    assert "could not use the answer" in message
    again = next(i for i, line in enumerate(lines) if "already answered: this run sent it again" in line)
    nearest = next(i for i, line in enumerate(lines) if "Nearest recorded request not yet answered" in line)
    assert again < nearest and "interaction 2 of 3" in lines[nearest]


def test_a_changed_request_gets_the_diff_against_the_nearest_unanswered_one(tmp_path: Path) -> None:
    [message] = _misses(tmp_path, ["plan", "search"], [_request("plan"), _request("search harder")])
    assert "sent it again" not in message
    assert "Nearest recorded request not yet answered: interaction 2 of 2; what changed:" in message
    assert "-messages[0].content: search" in message and "+messages[0].content: search harder" in message


def test_once_everything_is_answered_a_repeat_is_named_and_a_change_is_diffed(tmp_path: Path) -> None:
    repeat, changed = _misses(
        tmp_path, ["plan"], [_request("plan"), _request("plan"), _request("plan more")]
    )
    assert "interaction 1 of 1) and already answered: this run sent it again" in repeat
    assert "Nearest" not in repeat
    assert "Nearest recorded request (already answered): interaction 1 of 1; what changed:" in changed
    assert "+messages[0].content: plan more" in changed


def test_a_different_method_is_shown_as_what_changed(tmp_path: Path) -> None:
    [message] = _misses(tmp_path, ["plan"], [_request("plan", method="PUT")])
    assert "sent it again" not in message
    assert "- method: POST" in message and "+ method: PUT" in message


def test_the_recordings_are_read_for_diffing_once_per_test_not_per_miss(tmp_path: Path, monkeypatch) -> None:
    # A crew that changed misses at every call, each against the same recordings.
    read: list[Any] = []
    original = miss_message.body_lines
    monkeypatch.setattr(miss_message, "body_lines", lambda body: read.append(body) or original(body))
    messages = _misses(tmp_path, ["plan", "search", "answer"], [_request(f"changed {n}") for n in range(4)])
    assert len(messages) == 4
    assert all("Nearest recorded request not yet answered" in m for m in messages)
    assert len(read) == 3


def test_a_key_in_the_prompt_or_the_url_is_not_in_the_message(tmp_path: Path, monkeypatch) -> None:
    # The message is printed and lands in JUnit XML: a credential the crew sent must not.
    key = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGH"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    headers = {"authorization": f"Bearer {key}"}
    sent = Request("POST", f"{URL}?token={key}", _body(f"plan with {key}"), headers)
    [message] = _misses(tmp_path, ["plan"], [sent])
    assert key not in message
    assert "crewguard-scrubbed" in message and "+messages[0].content: plan with crewguard-scrubbed" in message


def _answer(body: str, content_type: str = "application/json", code: int = 200) -> dict[str, Any]:
    return {"status": {"code": code, "message": "Internal Server Error" if code == 500 else "OK"},
            "headers": {"content-type": [content_type]}, "body": {"string": body}}


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (_answer('{"id": "c1", "choices": ['),
         "its body is not valid JSON (Expecting value at character 25 of 25)"),
        (_answer(""), "its body is empty where JSON was announced"),
        (_answer('{"error": "boom"}', code=500),
         "it is an error answer, HTTP 500 Internal Server Error, which SDKs retry"),
        (_answer('data: {"id": 1}\n\ndata: {"id": \n\ndata: [DONE]\n\n', "text/event-stream"),
         "its streamed chunk 2 of 3 is not valid JSON (Expecting value at character 6 of 6)"),
    ],
)
def test_a_request_sent_again_names_what_is_wrong_with_the_answer_it_got(
    tmp_path: Path, answer: dict[str, Any], problem: str
) -> None:
    sent = [_request("plan"), _request("plan")]
    [message] = _misses(tmp_path, ["plan", "search"], sent, first_answer=answer)
    assert f"this run sent it again, as an SDK does when the answer fails it: {problem}." in message
    assert "Fix interaction 1's response in the cassette, or record this test again:" in message
    assert "Nearest" not in message  # the next interaction is not what went wrong


def test_a_good_answer_sent_again_keeps_the_diff() -> None:
    from pytest_crewguard.answer_problems import answer_problem

    assert answer_problem(_answer('{"id": "c1"}')) is None
    assert answer_problem(_answer('data: {"id": 1}\n\ndata: [DONE]\n\n', "text/event-stream")) is None
    assert answer_problem(_answer("plain text", "text/plain")) is None


def test_answers_crewguard_cannot_read_are_not_called_broken() -> None:
    # Bedrock's binary event stream, or a brotli body: valid answers, not judged here.
    from pytest_crewguard.answer_problems import answer_problem

    frame = b"\x00\x00\x00\x2a\x00\x00\x00\x00\xff\xfe binary frame"
    assert answer_problem(_answer(frame, "application/vnd.amazon.eventstream")) is None  # type: ignore[arg-type]
    brotli = _answer(b"\x8b\x05\x80{}\x03", "application/json")  # type: ignore[arg-type]
    brotli["headers"]["content-encoding"] = ["br"]
    assert answer_problem(brotli) is None
    assert answer_problem(_answer(b"\xff\xfe{", "application/json")) == "its body is not UTF-8 text"  # type: ignore[arg-type]


def test_a_shared_cassette_is_recorded_again_without_dropping_the_other_tests(tmp_path: Path) -> None:
    # Following "record with rewrite" on a cassette=... shared by three tests left only one.
    own = _misses(tmp_path, ["plan"], [_request("plan more")])[0]
    shared = _misses(tmp_path, ["plan"], [_request("plan more")], shared=True)[0]
    assert "pytest 't.py::test_x' --crewguard-record-mode=rewrite" in own
    assert "pytest 't.py::test_x' --crewguard-record-mode=new_episodes" in shared
