"""Patterns that backtracked on large or hostile input stay linear.

Each hostile input is timed against a benign input of the same size through the same entry
point (best of three), so a slow machine does not fail a test; a backtracking pattern is
hundreds of times slower at these sizes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_crewguard import scrubbing
from pytest_crewguard.output_schema import output_data
from pytest_crewguard.secret_values import PLACEHOLDER, secret_env_values
from pytest_crewguard.usage.routing import route

FACTOR = 20


def _took(call: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(3):
        scrubbing._UNCHANGED.clear()  # bodies found clean are remembered
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def test_a_body_nested_too_deep_to_parse_is_scrubbed_as_text_in_linear_time() -> None:
    headers = {"Content-Type": ["application/json"]}
    escaped = json.dumps([json.dumps({f"k{i}": "v" for i in range(4_000)})])  # tool arguments
    hostile = ("[" * 3_000 + escaped + "]" * 3_000).encode()
    benign = ("[" * 3_000 + json.dumps(["x" * len(escaped)]) + "]" * 3_000).encode()
    assert _took(lambda: scrubbing.scrub_body(hostile, headers, [])) < FACTOR * _took(
        lambda: scrubbing.scrub_body(benign, headers, [])
    )
    secret = ('[' * 3_000 + '{"client_secret":"cs-0123456789","note":"a \\"quoted\\" word"}' + "]" * 3_000)
    scrubbed = scrubbing.scrub_body(secret.encode(), headers, [])
    assert b"cs-0123456789" not in scrubbed and b'a \\"quoted\\" word' in scrubbed
    assert scrubbed.count(PLACEHOLDER.encode()) == 1


def test_a_fenced_answer_cut_short_is_read_in_linear_time() -> None:
    def answer(raw: str) -> Any:
        return output_data(SimpleNamespace(raw=raw, pydantic=None, json_dict=None))

    size = 40_000
    hostile = '```json\n{"a": 1,' + " " * size + '"b"'  # cut at max_tokens: no closing fence
    benign = '```json\n{"a": 1,' + "x" * size + '"b"'
    assert _took(lambda: answer(hostile)) < FACTOR * _took(lambda: answer(benign))
    assert answer('```json\n{"a": 1}\n```')[0] == {"a": 1}
    assert answer('```\n[1, 2]\n```')[0] == [1, 2]


def test_a_long_bedrock_path_is_routed_in_linear_time() -> None:
    host = "bedrock-runtime.us-east-1.amazonaws.com"
    hostile, benign = "/model/" * 1_500, "/m" * 5_250  # a hundred requests each: measurable

    def routed(path: str) -> None:
        for _ in range(100):
            route("POST", host, 443, path)

    assert _took(lambda: routed(hostile)) < FACTOR * _took(lambda: routed(benign))
    arn = route("POST", host, 443, "/model/arn:aws:bedrock:us-east-1:1:inference-profile/us.x-v1:0/converse")
    assert arn == ("llm", "bedrock", "converse", "us.x-v1:0")  # a model id with slashes, read whole
    found = route("POST", host, 443, "/model/anthropic.claude-3-haiku-20240307-v1:0/converse")
    assert found is not None and found[3] == "anthropic.claude-3-haiku-20240307-v1:0"


def test_a_long_variable_name_is_classified_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_crewguard import secret_values

    def classify(name: str) -> None:
        secret_values._is_credential_name.cache_clear()
        secret_values._is_credential_name(name)

    assert _took(lambda: classify("_KEY" * 10_000 + "-")) < FACTOR * _took(lambda: classify("_KE-" * 10_000))
    monkeypatch.setenv("OPENAI_API_KEY_2", "sk-second-0123456789abcdef")
    assert ("OPENAI_API_KEY_2", "sk-second-0123456789abcdef") in secret_env_values()


def test_credentials_by_form_and_multipart_fields_are_found_in_linear_time() -> None:
    size = 2_000_000
    spaces, token = "Bearer x" + " " * size + "y", "Bearer " + "x" * size
    assert _took(lambda: scrubbing.scrub_headers({"X-A": spaces}, frozenset(), [])) < FACTOR * _took(
        lambda: scrubbing.scrub_headers({"X-A": token}, frozenset(), [])
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}

    def upload(file: str) -> bytes:
        return f'--B\r\nContent-Disposition: form-data; name="f"\r\n\r\n{file}\r\n--B--\r\n'.encode()

    parts = "select 1\n-- note\n" + 'Content-Disposition: form-data; name="a"\r\n' * 3_000
    hostile, plain = upload(parts), upload("x" * len(parts))
    assert _took(lambda: scrubbing.scrub_body(hostile, headers, [])) < FACTOR * _took(
        lambda: scrubbing.scrub_body(plain, headers, [])
    )
