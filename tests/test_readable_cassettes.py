"""Cassettes are written so a re-recording's diff names what changed, and keep every byte."""

from __future__ import annotations

import copy
import difflib
import json
import socket
from pathlib import Path

import pytest
import yaml
from vcr.serializers import yamlserializer

from pytest_crewguard.persister import ReadableYamlSerializer, read_interactions

EXAMPLE = Path(__file__).parent.parent / "cassettes/fixtures/example/test_research_crew"


def _cassette() -> dict:
    return {"version": 1, "interactions": read_interactions(EXAMPLE / "test_usage_in_bounds.yaml")}


def _with_word(cassette: dict, old: str, new: str) -> dict:
    changed = copy.deepcopy(cassette)
    for interaction in changed["interactions"]:
        request = interaction["request"]
        request["body"] = request["body"].replace(old, new)
        body = interaction["response"]["body"]
        body["string"] = body["string"].replace(old, new)
    return changed


@pytest.mark.parametrize(("old", "new"), [("reliably", "robustly"), ("most important", "key")])
def test_a_one_word_change_shows_as_short_lines_holding_that_word(old: str, new: str) -> None:
    before = _cassette()
    after = _with_word(before, old, new)
    assert after != before
    lines_before = ReadableYamlSerializer.serialize(before).splitlines()
    lines_after = ReadableYamlSerializer.serialize(after).splitlines()
    changed = [
        line for line in difflib.unified_diff(lines_before, lines_after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed
    assert all(old in line or new in line for line in changed), changed
    assert all(len(line) < 200 for line in changed)


def test_bodies_are_stored_byte_for_byte_and_load_in_plain_yaml() -> None:
    cassette = _cassette()
    text = ReadableYamlSerializer.serialize(cassette)
    for loader in (yaml.SafeLoader, yaml.CSafeLoader):
        assert yaml.load(text, Loader=loader) == cassette
    assert yamlserializer.deserialize(text) == cassette  # plain vcrpy reads the same strings
    first = cassette["interactions"][0]["request"]["body"]
    assert "\n" not in first and len(first) > 500  # compact JSON on the wire...
    assert max(len(line) for line in text.splitlines()) < 200  # ...but short lines on disk


def test_odd_strings_survive() -> None:
    bodies = [
        json.dumps({"a": " leading space, trailing ", "b": ["x", "\\n", 'q"uote', "tab\there", "😀"]}),
        '{"content":"line one\\n  indented\\n\\n","x":[1,2,{"y":"z , w"}]}' * 3,
        '{"k": "' + "word " * 200 + '"}',
        "[1, 2, 3]" * 1 + "",
        "not json, but long enough to be considered for a break " * 3,
    ]
    data = {"interactions": [{"body": b} for b in bodies]}
    assert yaml.safe_load(ReadableYamlSerializer.serialize(data)) == data


def test_one_line_cassettes_written_before_still_load(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump(_cassette(), width=10**6))
    assert read_interactions(old) == _cassette()["interactions"]


CREW = """
def test_research(crewguard):
    crew = make_crew(description="Research {{topic}} and summarise it {word}")
    run = crewguard.kickoff(crew, inputs={{"topic": "AI agents"}})
    assert run.llm_calls == 1
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _without_clock(text: str) -> list[str]:
    """The cassette's lines, with the two values that differ on every recording (the server's
    ``date`` header and the measured latency) blanked."""
    lines = text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.strip() in ("date:", "x-crewguard-latency-s:"):
            lines[i + 1] = "<clock>"
    return lines


def test_recording_a_crew_again_after_a_one_word_change_diffs_on_that_word(pytester, provider):
    from .conftest import answer, crew_test_file

    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    recorded = []
    port = _free_port()  # the URL is in the cassette: the same port both times
    for word in ("briefly", "clearly"):  # same length: the Content-Length header stays the same
        server = provider([answer("AI agents plan, act and remember.\nThey use tools.")], port=port)
        pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, CREW.format(word=word)))
        pytester.runpytest("--crewguard-record-mode=rewrite").assert_outcomes(passed=1)
        server.stop()
        recorded.append(cassette.read_text())

    changed = [
        line
        for line in difflib.unified_diff(*map(_without_clock, recorded), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed, "the prompt change did not reach the cassette"
    assert all("briefly" in line or "clearly" in line for line in changed), changed
    assert all(len(line) < 200 for line in changed), changed
