"""Cassettes are written so a re-recording's diff names what changed, and keep every byte."""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path

import yaml

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


def test_a_one_word_change_shows_as_short_lines_holding_that_word() -> None:
    before = _cassette()
    after = _with_word(before, "reliably", "robustly")
    assert after != before
    old = ReadableYamlSerializer.serialize(before).splitlines()
    new = ReadableYamlSerializer.serialize(after).splitlines()
    changed = [
        line for line in difflib.unified_diff(old, new, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed
    assert all("reliably" in line or "robustly" in line for line in changed), changed
    assert all(len(line) < 200 for line in changed)


def test_bodies_are_stored_byte_for_byte_and_load_in_plain_yaml() -> None:
    cassette = _cassette()
    text = ReadableYamlSerializer.serialize(cassette)
    for loader in (yaml.SafeLoader, yaml.CSafeLoader):
        assert yaml.load(text, Loader=loader) == cassette
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
