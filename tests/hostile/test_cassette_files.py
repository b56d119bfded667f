"""Cassette files under stress: shared by several writers, left half-written, or malformed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from vcr.request import Request
from vcr.serialize import serialize

from pytest_crewguard.cassette_writers import writing_as
from pytest_crewguard.errors import CassetteError
from pytest_crewguard.persister import AtomicYamlPersister, ReadableYamlSerializer

from ..conftest import answer, crew_test_file

SERIALIZER = ReadableYamlSerializer


def _interaction(text: str) -> tuple[Request, dict[str, Any]]:
    request = Request("POST", "https://api.example.com/v1/chat", json.dumps({"q": text}).encode(), {})
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": json.dumps({"a": text}).encode()},
    }
    return request, response


def _dict(*texts: str) -> dict[str, Any]:
    pairs = [_interaction(t) for t in texts]
    return {"requests": [p[0] for p in pairs], "responses": [p[1] for p in pairs]}


def _load(path: Path) -> Any:
    try:
        return AtomicYamlPersister.load_cassette(path, SERIALIZER)
    except CassetteError:
        raise
    except Exception:  # vcrpy's CassetteNotFoundError: the test starts without a cassette
        return None


def _questions(path: Path) -> list[str]:
    data = yaml.safe_load(path.read_text())
    return [json.loads(i["request"]["body"])["q"] for i in data["interactions"]]


def _written_elsewhere(path: Path, *texts: str) -> None:
    """The file as another process's write of the same cassette leaves it."""
    data = serialize(_dict(*texts), _Capture)
    path.write_text(SERIALIZER.serialize(data))


class _Capture:
    @staticmethod
    def serialize(data: Any) -> Any:
        return data


def test_a_write_keeps_what_another_writer_added_since_this_test_loaded_it(tmp_path):
    path = tmp_path / "shared.yaml"
    writing_as(path, "test_m.py::test_a", "new_episodes", object())
    _load(path)  # no cassette yet
    _written_elsewhere(path, "b1", "same")  # another worker's test wrote it meanwhile
    AtomicYamlPersister.save_cassette(path, _dict("a1", "same"), SERIALIZER)
    assert _questions(path) == ["a1", "same", "b1"]  # the identical interaction kept once


def test_a_writer_that_dropped_an_old_interaction_does_not_get_it_back(tmp_path):
    path = tmp_path / "c.yaml"
    AtomicYamlPersister.save_cassette(path, _dict("stale", "kept"), SERIALIZER)
    writing_as(path, "test_m.py::test_a", "all", object())
    _load(path)
    # vcrpy's `all` replaced "stale" with a new recording: merging must not resurrect it.
    AtomicYamlPersister.save_cassette(path, _dict("fresh", "kept"), SERIALIZER)
    assert _questions(path) == ["fresh", "kept"]


def test_what_another_writer_replaced_does_not_come_back(tmp_path):
    path = tmp_path / "shared.yaml"
    AtomicYamlPersister.save_cassette(path, _dict("old_a", "old_b"), SERIALIZER)
    writing_as(path, "test_m.py::test_b", "all", object())
    _load(path)
    _written_elsewhere(path, "old_b", "new_a")  # test_a, in `all` mode, re-recorded old_a
    AtomicYamlPersister.save_cassette(path, _dict("old_a", "new_b"), SERIALIZER)  # b replaced old_b
    assert _questions(path) == ["new_b", "new_a"]


def test_rewrite_by_two_tests_in_one_session_fails_the_later_one_naming_both(tmp_path, monkeypatch):
    # Sessions are told apart by object here, not by the xdist run this suite may be part of.
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)
    path = tmp_path / "shared.yaml"
    session = object()
    writing_as(path, "test_m.py::test_a", "rewrite", session)
    _load(path)
    AtomicYamlPersister.save_cassette(path, _dict("a1"), SERIALIZER)
    writing_as(path, "test_m.py::test_b", "rewrite", session)
    _load(path)
    before = path.read_text()
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.save_cassette(path, _dict("b1"), SERIALIZER)
    message = str(refused.value)
    assert "test_m.py::test_a" in message and "test_m.py::test_b" in message and str(path) in message
    assert path.read_text() == before
    # Said as it is: test_a's rewrite replaced the file; the message must not say nothing was.
    assert "Nothing was written" not in message
    assert "the file holds what test_m.py::test_a wrote" in message
    # The next session starts afresh: rewriting the cassette again is fine.
    writing_as(path, "test_m.py::test_b", "rewrite", object())
    _load(path)
    AtomicYamlPersister.save_cassette(path, _dict("b1"), SERIALIZER)
    assert _questions(path) == ["b1"]


def test_a_crashed_writes_leftover_temporary_files_are_removed_on_the_next_write(tmp_path):
    path = tmp_path / "c.yaml"
    leftovers = [tmp_path / ".c.yaml.k2j3h4.tmp", tmp_path / ".c.yaml.zz.tmp"]
    for leftover in leftovers:
        leftover.write_text("interactions: [half")
    unrelated = tmp_path / ".other.yaml.k2j3h4.tmp"
    unrelated.write_text("another cassette's write")
    AtomicYamlPersister.save_cassette(path, _dict("q"), SERIALIZER)
    assert not any(leftover.exists() for leftover in leftovers)
    assert unrelated.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.yaml.k2j3h4.tmp", "c.yaml"]


GOOD_REQUEST = {"method": "POST", "uri": "https://x/v1/chat", "body": "{}", "headers": {}}
GOOD_RESPONSE = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "{}"}}


def _latency(name: str, value: str) -> dict[str, Any]:
    return {**GOOD_RESPONSE, "headers": {name: [value]}}


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        ({"request": GOOD_REQUEST, "response": _without(GOOD_RESPONSE, "status")}, "has no response status"),
        ({"request": GOOD_REQUEST, "response": _without(GOOD_RESPONSE, "body")}, "has no response body"),
        ({"request": _without(GOOD_REQUEST, "body"), "response": GOOD_RESPONSE}, "has no request body"),
        ({"request": {**GOOD_REQUEST, "headers": ["a: b"]}, "response": GOOD_RESPONSE},
         "has a request field 'headers' that is a list, not a mapping"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "headers": ["a"]}},
         "has a response field 'headers' that is a list, not a mapping"),
        ({"request": GOOD_REQUEST}, "has no response"),
        ({"response": GOOD_RESPONSE}, "has no request"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "status": {"code": "OK"}}},
         "has a response status without a numeric code"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "body": {"text": "{}"}}},
         "has a response body without a string"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "headers": {"date": "Mon, 30 Nov"}}},
         "has a response header 'date' that is a str, not a list of strings"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "headers": {"date": [["a"]]}}},
         "has a response header 'date' that is a list holding [['a']], not a list of strings"),
        ({"request": {**GOOD_REQUEST, "headers": {"accept": 1}}, "response": GOOD_RESPONSE},
         "has a request header 'accept' that is an int, not a string or a non-empty list of strings"),
        ({"request": {**GOOD_REQUEST, "headers": {"accept": []}}, "response": GOOD_RESPONSE},
         "has a request header 'accept' that is a list holding [], not a string or a non-empty list"),
        ({"request": {**GOOD_REQUEST, "headers": {7: "x"}}, "response": GOOD_RESPONSE},
         "has a request header name that is an int (7), not a string"),
        ({"request": GOOD_REQUEST, "response": {**GOOD_RESPONSE, "status": {"code": 999, "message": "?"}}},
         "has a response status code 999, not an HTTP status (100 to 599)"),
        ({"request": {**GOOD_REQUEST, "uri": "http://[::1/v1"}, "response": GOOD_RESPONSE},
         "has a request uri that is not a URL (Invalid IPv6 URL: 'http://[::1/v1')"),
        ({"request": GOOD_REQUEST, "response": _latency("x-crewguard-latency-s", "nan")},
         "has a response header 'x-crewguard-latency-s' of 'nan', not a latency in seconds (a number from 0"),
        ({"request": GOOD_REQUEST, "response": _latency("X-Crewguard-Latency-S", "-1")},
         "has a response header 'X-Crewguard-Latency-S' of '-1', not a latency in seconds"),
        ({"request": GOOD_REQUEST, "response": _latency("x-crewguard-latency-s", "abc")},
         "has a response header 'x-crewguard-latency-s' of 'abc', not a latency in seconds"),
        ("just a string", "is not a mapping with request and response"),
    ],
)
def test_a_malformed_interaction_is_named_at_load_and_the_file_is_left_alone(tmp_path, broken, problem):
    path = tmp_path / "c.yaml"
    good = {"request": GOOD_REQUEST, "response": GOOD_RESPONSE}
    text = yaml.safe_dump({"interactions": [good, good, broken], "version": 1})
    path.write_text(text)
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.load_cassette(path, SERIALIZER)
    assert str(refused.value).startswith(f"crewguard cannot load cassette {path}: interaction 3 {problem}")
    assert "record again with --crewguard-record-mode=once" in str(refused.value)
    assert path.read_text() == text


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda text: text + "interactions: []\n", "interactions"),  # a merge's leftover
        (lambda text: text.replace("  code: 200\n", "  code: 200\n      code: 500\n"), "code"),
    ],
)
def test_a_key_given_twice_is_named_not_the_last_taken(tmp_path, edit, key):
    # YAML keeps the last one: the first edit emptied the cassette ("has no interactions", and
    # the advice to record again called the provider); the second replayed a 500.
    path = tmp_path / "c.yaml"
    good = {"request": GOOD_REQUEST, "response": GOOD_RESPONSE}
    text = edit(yaml.safe_dump({"interactions": [good], "version": 1}, default_flow_style=False))
    path.write_text(text)
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.load_cassette(path, SERIALIZER)
    assert "it is not valid YAML at line " in str(refused.value)
    assert f"(found the key {key!r} twice)" in str(refused.value)
    assert path.read_text() == text


@pytest.mark.parametrize("version", [99, "1", 0])
def test_a_cassette_of_another_format_version_is_named(tmp_path, version):
    path = tmp_path / "c.yaml"
    good = {"request": GOOD_REQUEST, "response": GOOD_RESPONSE}
    path.write_text(yaml.safe_dump({"interactions": [good], "version": version}))
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.load_cassette(path, SERIALIZER)
    assert f"it says format version {version!r}, and crewguard reads vcrpy's version 1" in str(refused.value)


def test_a_cassette_that_is_not_utf8_is_named_with_the_way_back(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes("interactions: []\nnote: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.load_cassette(path, SERIALIZER)
    assert str(refused.value).startswith(f"crewguard cannot load cassette {path}: it is not UTF-8 text (")
    assert "Restore it from version control" in str(refused.value)


def test_a_directory_where_the_cassette_should_be_is_named_not_taken_for_no_cassette(tmp_path):
    # Taken for "no cassette yet", it sent the user to record (calling the provider), and the
    # write then failed on the directory.
    path = tmp_path / "c.yaml"
    path.mkdir()
    with pytest.raises(CassetteError) as refused:
        AtomicYamlPersister.load_cassette(path, SERIALIZER)
    expected = f"crewguard cannot load cassette {path}: it is a directory, not a cassette file"
    assert str(refused.value).startswith(expected)


def test_an_alias_bomb_in_a_header_is_named_without_expanding_it(tmp_path):
    # Nine levels of YAML aliases: a billion items if written out. Loaded in a child process
    # limited to 1 GB of address space, where writing it out would fail.
    lines = ["version: 1", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    lines += ["interactions:", "- request: {method: POST, uri: 'https://x/v1/chat', body: '{}', headers: {}}",
              "  response: {status: {code: 200, message: OK}, headers: {server: *a8}, body: {string: '{}'}}"]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    child = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "from pytest_crewguard.persister import AtomicYamlPersister, ReadableYamlSerializer\n"
        "try:\n"
        f"    AtomicYamlPersister.load_cassette({str(path)!r}, ReadableYamlSerializer)\n"
        "except Exception as err:\n"
        "    print(type(err).__name__, err)\n"
    )
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("CassetteError crewguard cannot load cassette"), done.stdout + done.stderr
    assert "interaction 1 has a response header 'server' that is a list holding [[[" in done.stdout
    assert len(done.stdout) < 500


SHARED = """
import time, pathlib

def _meet(name):
    # Both workers' first tests wait for each other, so both load the cassette before either
    # writes it.
    here = pathlib.Path(__file__).parent
    (here / f"started-{name}").touch()
    deadline = time.time() + 60
    while len(list(here.glob("started-*"))) < 2 and time.time() < deadline:
        time.sleep(0.05)

@pytest.mark.parametrize("topic", ["alpha", "beta", "gamma", "delta"])
@pytest.mark.crewguard(cassette="shared.yaml", record_mode="new_episodes")
def test_topic(crewguard, topic):
    _meet(topic)
    run = crewguard.kickoff(make_crew, inputs={"topic": topic})
    assert run.output.raw == "About " + topic
"""


def _about(request: Any) -> Any:
    topic = next(t for t in ("alpha", "beta", "gamma", "delta") if f"Research {t}" in request.prompt_text)
    return answer(f"About {topic}")


def test_two_xdist_workers_recording_one_cassette_lose_nothing(pytester, provider):
    server = provider(_about)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, SHARED))
    # The same xdist session also checks that the controller merges the workers' ledgers and
    # enforces the session budget (each xdist session starts two processes that import CrewAI).
    # Four tests at $0.00036 each: $0.00144 in all, spread over two worker processes.
    result = pytester.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "-p", "no:warnings", "--crewguard-max-cost=0.001"
    )
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*TOTAL (4 tests)*$0.001440*", "*session cost $0.001440 is over --crewguard-max-cost=$0.001000*"]
    )
    assert len(server.llm_requests) == 4
    cassette = Path(pytester.path) / "cassettes" / "shared.yaml"
    interactions = yaml.safe_load(cassette.read_text())["interactions"]
    assert len(interactions) == 4
    server.stop()
    replay = pytester.runpytest("--crewguard-record-mode=none")
    replay.assert_outcomes(passed=4)


MALFORMED = """
@pytest.mark.crewguard
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
"""


def test_a_malformed_cassette_fails_the_test_with_the_message_not_a_key_error(pytester, provider):
    # A hand-edited header once reached the HTTP client as it stood: the SDK took the failure
    # for a connection error, retried, and the test failed on a cassette miss naming another
    # request. Now the load names the header, once.
    server = provider([answer("ok")])
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, MALFORMED))
    path = Path(pytester.path) / "cassettes" / "test_crew" / "test_research.yaml"
    path.parent.mkdir(parents=True)
    response = {**GOOD_RESPONSE, "headers": {"content-type": ["application/json"], "x-count": 5}}
    text = yaml.safe_dump({"interactions": [{"request": GOOD_REQUEST, "response": response}]})
    path.write_text(text)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*cannot load cassette *test_research.yaml: interaction 1 has a response header 'x-count' "
         "that is an int, not a list of strings*"]
    )
    assert sum(line.startswith("crewguard cannot load cassette") for line in result.outlines) == 1
    result.stdout.no_fnmatch_line("*During handling of the above exception*")
    result.stdout.no_fnmatch_line("*KeyError*")
    result.stdout.no_fnmatch_line("*no recorded response*")
    assert path.read_text() == text and server.requests == []
