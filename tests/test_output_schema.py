"""Structured output: the crew's (or one task's) output checked against a pydantic model, a JSON
Schema dict or a schema file, with real crews recorded against the scripted provider and replayed.

Most crews here have no ``output_pydantic``: their raw text is JSON and crewguard validates it.
With ``output_pydantic`` CrewAI validates the model's answer itself and raises (after retrying);
that path is covered separately.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from .conftest import crew_test_file
from .test_iterations import outcomes

SCHEMA = {
    "type": "object",
    "required": ["summary", "key_findings", "confidence"],
    "properties": {
        "summary": {"type": "string"},
        "key_findings": {"type": "array", "items": {"type": "string"}},
        "confidence": {"type": "number"},
    },
}

VALID = {"summary": "Agents plan and act.", "key_findings": ["planning", "tools"], "confidence": 0.8}
# Each topic the crew is asked about gets its own answer from the scripted model.
ANSWERS = {
    "valid topic": json.dumps(VALID),
    "missing topic": json.dumps({"summary": "Agents plan and act.", "confidence": 0.8}),
    "wrong topic": json.dumps(
        {"summary": "Agents plan and act.", "key_findings": ["planning", 3], "confidence": 0.8}
    ),
    "blank topic": "  \n ",
    "silent topic": "",
    # Escape sequences in a model's answer: quoted in the failure, never sent to the terminal.
    "escaped topic": "not JSON \x1b[2J\x1b]0;pwned\x07\r\x1b[32mPASSED everything\x1b[0m",
    "the article": json.dumps({"summary": 42, "key_findings": "none"}),
}

BODY = f"""
SCHEMA = {SCHEMA!r}


class ResearchOutput(BaseModel):
    summary: str
    key_findings: list[str]
    confidence: float


def make_json_crew(topic, output_pydantic=None):
    agent = Agent(role="Researcher", goal="Research", backstory="Expert researcher", llm=make_llm())
    task = Task(name="research", description=f"Research {{topic}}",
                expected_output="JSON with summary, key_findings and confidence", agent=agent,
                output_pydantic=output_pydantic)
    return Crew(agents=[agent], tasks=[task])


def make_two_task_crew():
    researcher = Agent(role="Researcher", goal="Research", backstory="Expert researcher", llm=make_llm())
    writer = Agent(role="Writer", goal="Write", backstory="Writer", llm=make_llm())
    research = Task(name="research", description="Research valid topic",
                    expected_output="JSON with summary, key_findings and confidence", agent=researcher)
    write = Task(name="write", description="Write the article", expected_output="JSON", agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, write])


@pytest.mark.crewguard(output=ResearchOutput)
def test_valid(crewguard):
    run = crewguard.kickoff(lambda: make_json_crew("valid topic"))
    run.assert_output(SCHEMA)
    run.assert_output("schemas/research.json")


@pytest.mark.crewguard(output=ResearchOutput)
def test_missing_model(crewguard):
    crewguard.kickoff(lambda: make_json_crew("missing topic"))


@pytest.mark.crewguard(output=ResearchOutput)
def test_wrong_model(crewguard):
    crewguard.kickoff(lambda: make_json_crew("wrong topic"))


@pytest.mark.crewguard(output=SCHEMA, cassette="test_crew/test_missing_model.yaml")
def test_missing_dict(crewguard):
    crewguard.kickoff(lambda: make_json_crew("missing topic"))


@pytest.mark.crewguard(output=SCHEMA, cassette="test_crew/test_wrong_model.yaml")
def test_wrong_dict(crewguard):
    crewguard.kickoff(lambda: make_json_crew("wrong topic"))


@pytest.mark.crewguard(output="schemas/research.json", cassette="test_crew/test_missing_model.yaml")
def test_missing_file(crewguard):
    crewguard.kickoff(lambda: make_json_crew("missing topic"))


@pytest.mark.crewguard(output="schemas/research.json", cassette="test_crew/test_wrong_model.yaml")
def test_wrong_file(crewguard):
    crewguard.kickoff(lambda: make_json_crew("wrong topic"))


@pytest.mark.crewguard(output=ResearchOutput)
def test_blank(crewguard):
    crewguard.kickoff(lambda: make_json_crew("blank topic"))


@pytest.mark.crewguard(output=ResearchOutput)
def test_escaped(crewguard):
    crewguard.kickoff(lambda: make_json_crew("escaped topic"))


@pytest.mark.crewguard
def test_silent(crewguard):
    try:
        crewguard.kickoff(lambda: make_json_crew("silent topic"))
    finally:
        dump(crewguard.runs[0], "silent")


@pytest.mark.crewguard
def test_task_research(crewguard):
    run = crewguard.kickoff(make_two_task_crew)
    run.assert_output(ResearchOutput, task="research")
    run.assert_output("schemas/research.json", task="research")


@pytest.mark.crewguard(output={{"reserch": ResearchOutput}}, cassette="test_crew/test_task_research.yaml")
def test_task_typo(crewguard):
    crewguard.kickoff(make_two_task_crew)


@pytest.mark.crewguard(output=ResearchOutput)
def test_nothing_ran(crewguard):
    crewguard.kickoff_async(lambda: make_json_crew("valid topic"))  # never awaited: no kickoff


@pytest.mark.crewguard(cassette="test_crew/test_task_research.yaml")
def test_task_write(crewguard):
    run = crewguard.kickoff(make_two_task_crew)
    run.assert_output(ResearchOutput, task="write")


@pytest.mark.crewguard
def test_crewai_rejects(crewguard):
    try:
        crewguard.kickoff(lambda: make_json_crew("missing topic", output_pydantic=ResearchOutput))
    finally:
        dump(crewguard.runs[0], "rejected")
"""


def answer_by_topic(req: ReceivedRequest) -> Reply:
    text = req.prompt_text
    return Reply(text=next(reply for topic, reply in ANSWERS.items() if topic in text))


def failure_of(result: pytest.RunResult, test: str) -> str:
    """The long failure text of one inner test."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    (report,) = [r for r in reports if r.when == "call" and r.nodeid.endswith(f"::{test}")]
    return str(report.longreprtext)


def record_and_replay(
    pytester: pytest.Pytester, provider: Any, expected: dict[str, str], *, replay_only: tuple[str, ...] = ()
) -> pytest.RunResult:
    """Record the inner tests named in ``expected`` (except ``replay_only`` ones, which reuse
    another test's cassette), stop the provider, and replay them all."""
    server = provider(answer_by_topic)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    schemas = Path(pytester.path) / "schemas"
    schemas.mkdir()
    (schemas / "research.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
    to_record = [name for name in expected if name not in replay_only]
    recorded = pytester.runpytest("--crewguard-record-mode=once", "-k", " or ".join(to_record))
    assert outcomes(recorded) == {name: expected[name] for name in to_record}
    server.stop()
    result = pytester.runpytest("-k", " or ".join(expected))
    assert outcomes(result) == expected
    return result


def test_output_validation_names_field_paths(pytester: pytest.Pytester, provider: Any) -> None:
    sources = ("model", "dict", "file")
    expected = {"test_valid": "passed"}
    expected |= {f"test_{case}_{source}": "failed" for case in ("missing", "wrong") for source in sources}
    replayed = record_and_replay(
        pytester, provider, expected, replay_only=tuple(n for n in expected if n.endswith(("dict", "file")))
    )
    assert failure_of(replayed, "test_missing_model") == (
        "crewguard: the crew's final output does not match ResearchOutput:\n"
        "  key_findings: Field required\n"
        '  raw output: {"summary": "Agents plan and act.", "confidence": 0.8}'
    )
    assert failure_of(replayed, "test_wrong_model") == (
        "crewguard: the crew's final output does not match ResearchOutput:\n"
        "  key_findings[1]: Input should be a valid string (got 3)\n"
        '  raw output: {"summary": "Agents plan and act.", "key_findings": ["planning", 3], '
        '"confidence": 0.8}'
    )
    for source, name in (("dict", "the JSON Schema"), ("file", "research.json")):
        assert failure_of(replayed, f"test_missing_{source}") == (
            f"crewguard: the crew's final output does not match {name}:\n"
            "  key_findings: required property is missing\n"
            '  raw output: {"summary": "Agents plan and act.", "confidence": 0.8}'
        )
        assert failure_of(replayed, f"test_wrong_{source}").splitlines()[:2] == [
            f"crewguard: the crew's final output does not match {name}:",
            "  key_findings[1]: 3 is not of type 'string'",
        ]
    replayed.stdout.fnmatch_lines(
        [
            "*test_crew.py::test_missing_model *1 *120 *30 *$0.000036 *1 *0 *FAILED output",
            "*test_crew.py::test_valid *1 *120 *30 *$0.000036 *1 *0 *passed",
        ]
    )


def test_empty_and_escaped_outputs_fail_readably(pytester: pytest.Pytester, provider: Any) -> None:
    replayed = record_and_replay(
        pytester, provider, {"test_blank": "failed", "test_silent": "failed", "test_escaped": "failed"}
    )
    escaped = failure_of(replayed, "test_escaped")
    assert "\x1b" not in escaped and "\r" not in escaped and "\x07" not in escaped
    assert "not JSON \\x1b[2J\\x1b]0;pwned\\x07\\r\\x1b[32mPASSED everything" in escaped
    # Whitespace is an answer CrewAI accepts: the task's output is then empty.
    assert failure_of(replayed, "test_blank").startswith(
        "crewguard: the crew's final output is empty: the agent returned no text, so there is "
        "nothing to check against ResearchOutput."
    )
    # An empty string CrewAI rejects itself, after asking three times.
    assert failure_of(replayed, "test_silent") == (
        "crewguard: the output is empty: the model returned an empty answer (agent 'Researcher' on "
        "task 'research') and CrewAI gave up (Invalid response from LLM call - None or empty.); "
        "the run made 3 LLM calls, all recorded. Check the model's replies in the cassette; a "
        "prompt that asks for something specific (the task's expected_output) usually fixes it."
    )
    replayed.stdout.fnmatch_lines(["*test_crew.py::test_silent *3 *360 *90 *$0.000108 *FAILED output"])


def test_assert_output_checks_one_task(pytester: pytest.Pytester, provider: Any) -> None:
    # One crew, two tasks: its research task's output is valid, its write task's (the final
    # output) is not; test_task_research passes, checking the research task alone.
    replayed = record_and_replay(
        pytester,
        provider,
        {"test_task_research": "passed", "test_task_write": "failed"},
        replay_only=("test_task_write",),
    )
    failure, where = failure_of(replayed, "test_task_write").rsplit("\n", 1)
    # The traceback ends at the test's own line: crewguard's frames are hidden.
    assert failure.endswith(
        '>       run.assert_output(ResearchOutput, task="write")\n'
        "E       AssertionError: the output of task 'write' does not match ResearchOutput:\n"
        "E         summary: Input should be a valid string (got 42)\n"
        "E         key_findings: Input should be a valid list (got 'none')\n"
        "E         confidence: Field required\n"
        'E         raw output: {"summary": 42, "key_findings": "none"}\n'
    ), failure
    assert where.startswith("test_crew.py:") and where.endswith(": AssertionError")


def test_an_output_gate_with_nothing_to_check_fails(pytester: pytest.Pytester, provider: Any) -> None:
    # A task name that no run ran, and a schema with no kickoff at all, passed on nothing.
    replayed = record_and_replay(
        pytester, provider, {"test_task_research": "passed", "test_task_typo": "failed",
                             "test_nothing_ran": "failed"},
        replay_only=("test_task_typo",),
    )
    assert failure_of(replayed, "test_task_typo").startswith(
        "crewguard: output={...} names task 'reserch' but this test ran no such task, so nothing was "
        "checked against it; its tasks: 'research' (crew 'crew'), 'write' (crew 'crew')."
    )
    assert "no crew or flow of this test gave an output to check: no kickoff ran. Was a coroutine not " \
        "awaited" in failure_of(replayed, "test_nothing_ran")


def test_crewai_rejecting_the_output_fails_with_field_paths_and_keeps_the_calls(
    pytester: pytest.Pytester, provider: Any
) -> None:
    # With output_pydantic CrewAI validates the answer itself, asks again twice, then raises
    # pydantic's ValidationError out of kickoff.
    replayed = record_and_replay(pytester, provider, {"test_crewai_rejects": "failed"})
    assert failure_of(replayed, "test_crewai_rejects") == (
        "crewguard: CrewAI could not build ResearchOutput from the model's output (agent "
        "'Researcher' on task 'research'); the run made 3 LLM calls, all recorded:\n"
        "  key_findings: Field required\n"
        '  model output: {"summary": "Agents plan and act.", "confidence": 0.8}'
    )
    run = json.loads((Path(pytester.path) / "rejected.json").read_text())
    assert run["llm_calls"] == 3
    assert run["cost"] == pytest.approx(3 * 0.000036)
    replayed.stdout.fnmatch_lines(
        ["*test_crew.py::test_crewai_rejects *3 *360 *90 *$0.000108 *FAILED output"]
    )


def test_plain_text_output_checks_against_a_string_schema(crewai_loaded):
    from crewai.crews.crew_output import CrewOutput

    from pytest_crewguard.output_schema import check_output
    from pytest_crewguard.run import GuardedRun

    def run(raw: str) -> GuardedRun:
        return GuardedRun(output=CrewOutput(raw=raw), calls=[], elapsed_s=0.0, projected_s=None)

    schema = {"type": "string", "minLength": 10, "pattern": "^Agents"}
    assert check_output(run("Agents plan and act."), schema) is None
    problem = check_output(run("Short"), schema)
    assert problem is not None
    assert "(root): 'Short' is too short" in problem and "does not match '^Agents'" in problem
    # Any other schema still needs JSON.
    assert "is not JSON" in (check_output(run("Agents plan."), {"type": "object"}) or "")


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "bogus"}, "this schema is not a valid JSON Schema: 'bogus' is not valid"),
        ({"title": "Research", "properties": {"a": {"type": 5}}},
         "output schema 'Research' is not a valid JSON Schema: 5 is not valid"),
        ({"type": "object", "required": "summary"}, "'summary' is not of type 'array' (at required)"),
    ],
)
def test_a_schema_that_is_not_json_schema_is_refused_with_the_marker(schema, problem):
    # Refused when the marker is read (collection), not after the crew has run.
    from pytest_crewguard.errors import ConfigError
    from pytest_crewguard.marker import spec_from_marker

    with pytest.raises(ConfigError) as refused:
        spec_from_marker((), {"output": schema}, "t.py::test_x")
    assert "argument output={...}: " in str(refused.value) and problem in str(refused.value)
    assert spec_from_marker((), {"output": {"type": "object"}}, "t.py::test_x").output == {"type": "object"}


def test_a_schema_file_that_is_not_json_schema_is_refused_naming_the_file(tmp_path):
    from pytest_crewguard.errors import ConfigError
    from pytest_crewguard.marker import spec_from_marker

    (tmp_path / "research.json").write_text('{"type": "object", "properties": {"summary": {"type": "text"}}}')
    with pytest.raises(ConfigError) as refused:
        spec_from_marker((), {"output": "research.json"}, "t.py::test_x", rootdir=tmp_path)
    message = str(refused.value)
    assert "argument output='research.json': output schema 'research.json' is not a valid" in message
    assert "(at properties/summary/type)" in message and "relative to the rootdir" not in message
