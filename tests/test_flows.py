"""Flows and @CrewBase projects: a `crewai create crew`-style project with YAML config and a Flow
(two crews, an ``Agent.kickoff()`` step, a direct ``LLM.call()`` step), recorded through the
scripted provider and replayed.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

PROJECT = Path(__file__).parent / "data" / "brief_project"
GOOD_BRIEF = json.dumps({"title": "Agents at work", "points": ["they plan", "they use tools"]})


def answers(request: ReceivedRequest) -> Reply:
    """Each agent's reply, by who is asking: deterministic whatever the order of requests."""
    text = request.prompt_text
    if request.body.get("tools") and "Digger" in text:
        return Reply.tool("lookup", query="x")
    if "Writer" in text:
        return Reply(text="Sorry, no brief today." if "broken" in text else GOOD_BRIEF)
    if "Researcher" in text:
        return Reply(text="Agents plan, call tools and write.")
    if "Editor" in text:
        return Reply(text="How agents use tools")
    if "headline" in text:
        return Reply(text="Agents at work")
    return Reply(text="done")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.split("::")[-1]: r.outcome for r in reports if r.when == "call"}


def dumped(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(pytester.path) / f"{name}.json").read_text())
    return data


@pytest.fixture
def project(
    lancedb_loaded: None, pytester: pytest.Pytester, provider: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    server = provider(answers)
    shutil.copytree(PROJECT, pytester.path, dirs_exist_ok=True)
    monkeypatch.setenv("BRIEF_BASE_URL", server.openai_base_url)
    monkeypatch.syspath_prepend(str(pytester.path))
    return server


EXPECTED = {
    "test_crew": "passed",
    "test_flow": "passed",
    "test_flow_bad_brief": "failed",
    "test_flow_output": "passed",
    "test_loop": "failed",
    "test_shared_crew": "failed",
    "test_application_flow": "passed",
    "test_flow_async": "passed",
    "test_flow_unknown_task": "failed",
    "test_slow_flow": "failed",
    "test_application_flow_output": "failed",
}

# Every call of BriefFlow, in order: crew, flow step, agent, task.
ATTRIBUTED = [
    {"crew": "ResearchCrew", "flow_step": "research", "agent": "Researcher", "task": "research"},
    {"crew": None, "flow_step": "pick_angle", "agent": "Editor", "task": None},
    {"crew": None, "flow_step": "headline", "agent": None, "task": None},
    {"crew": "WriteCrew", "flow_step": "write", "agent": "Writer", "task": "write"},
]


def test_flow_project_recorded_and_replayed(pytester: pytest.Pytester, project: Any) -> None:
    recorded = pytester.runpytest("--crewguard-record-mode=once", "-k", "not miss")
    assert outcomes(recorded) == EXPECTED
    live = dumped(pytester, "flow")
    project.stop()  # replay: nothing may reach the provider

    replayed = pytester.runpytest()
    assert outcomes(replayed) == {**EXPECTED, "test_flow_miss": "failed"}
    flow = dumped(pytester, "flow")
    assert flow["output"] == json.loads(GOOD_BRIEF)  # kickoff_flow returns the flow's own value
    assert flow["state_headline"] == "Agents at work"
    assert flow["calls"] == live["calls"] == ATTRIBUTED
    assert [(r["crew"], r["agent"], r["flow_step"]) for r in flow["runs"]] == [
        ("ResearchCrew", None, "research"),
        (None, "Editor", "pick_angle"),
        ("WriteCrew", None, "write"),
    ]
    assert [r["iterations"] for r in flow["runs"]] == [
        [["Researcher", "research", 1]],
        [["Editor", None, 1]],
        [["Writer", "write", 1]],
    ]
    assert flow["cost"] == live["cost"] > 0 and flow["tokens"] == live["tokens"] > 0
    # The direct LLM.call() step is in the flow's time: 4 calls of recorded latency on top.
    assert flow["projected_s"] > flow["elapsed_s"]
    # Application kickoffs read like fixture ones: a CrewOutput with its task outputs.
    app = dumped(pytester, "app")
    assert [(r["output"], r["task_outputs"]) for r in app["runs"] if r["crew"]] == [
        ("CrewOutput", ["research"]),
        ("CrewOutput", ["write"]),
    ]
    assert app["calls"] == ATTRIBUTED

    # An Agent.kickoff() is a run: its rounds are counted and its forced final answer seen.
    (loop,) = dumped(pytester, "loop")["runs"]
    assert (loop["agent"], loop["flow_step"], loop["iterations"]) == ("Digger", "dig", [["Digger", None, 4]])
    assert loop["max_iter_hits"] == [["Digger", None]]

    text = replayed.stdout.str()
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_flow_bad_brief _*",
            "crewguard: the output of crew 'WriteCrew', flow step 'write', task 'write' is not JSON "
            "*so it cannot match Brief.",
            "  raw output: Sorry, no brief today.",
        ]
    )
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_loop _*",
            "crewguard: agent 'Digger' in Agent.kickoff() used 4 rounds, over max_iterations=2",
        ]
    )
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_shared_crew _*",
            "crewguard: Crew 'ResearchCrew' was already used in a crew run earlier in this test*",
            "*in a flow, inside the step that kicks the crew off*",
        ]
    )
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_flow_unknown_task _*",
            "crewguard: output={...} names task 'summary' but the flow BriefFlow ran no such task; "
            "its tasks: 'research' (crew 'ResearchCrew'), 'write' (crew 'WriteCrew')",
        ]
    )
    replayed.stdout.fnmatch_lines(
        ["*_ test_slow_flow _*", "crewguard: the flow SlowFlow ran past max_seconds=0.5*"]
    )
    # A miss inside a flow: crewguard's own message and verdict, not the flow's traceback.
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_flow_miss _*",
            "crewguard: no recorded response for POST *",
            "  test:     test_brief.py::test_flow_miss",
        ]
    )
    replayed.stdout.fnmatch_lines(["*test_flow_miss*FAILED cassette_miss*"])
    # output=Brief on a flow the application kicks off: the flow's return value is checked.
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_application_flow_output _*",
            "crewguard: flow BriefFlow's output does not match Brief:",
            "  title: Field required",
        ]
    )
    # The research crew's plain text never met the Brief schema: only `write` was checked.
    assert "ResearchCrew', flow step 'research'" not in text
    # Roles from `role: >` end in a newline in CrewAI; no message, key or table shows it.
    assert "\\n'" not in text and "Researcher\\n" not in json.dumps(flow)


# -- in-process: which output each schema applies to, and usage errors --------------------------


def test_output_dict_is_a_task_map_unless_it_is_a_json_schema() -> None:
    from pydantic import BaseModel

    from pytest_crewguard.output_gates import task_schemas

    class Brief(BaseModel):
        title: str

    assert task_schemas({"write": Brief, " research ": "schemas/notes.json"}) == {
        "write": Brief,
        "research": "schemas/notes.json",
    }
    assert task_schemas({"type": "object", "properties": {"title": {"type": "string"}}}) is None
    assert task_schemas({"properties": {}}) is None
    assert task_schemas(Brief) is None


def test_a_task_map_with_a_wrong_schema_is_a_usage_error(tmp_path: Path) -> None:
    from pytest_crewguard.errors import ConfigError
    from pytest_crewguard.marker import spec_from_marker

    with pytest.raises(ConfigError, match=r"task 'research' has 3, which is not a schema"):
        spec_from_marker(
            (), {"output": {"write": {"type": "object"}, "research": 3}}, "t.py::t", rootdir=tmp_path
        )


@dataclass
class _BriefDataclass:
    summary: str


@pytest.mark.parametrize("schema", [_BriefDataclass, "schemas/brief.yaml", 5])
def test_a_task_map_with_no_schema_at_all_is_a_usage_error_not_an_empty_json_schema(
    tmp_path: Path, schema: Any
) -> None:
    # Read as a JSON Schema of unknown keywords, {"write": <a dataclass>} accepted any output.
    from pytest_crewguard.errors import ConfigError
    from pytest_crewguard.marker import spec_from_marker

    expected = r"argument output=\{...\}: task 'write' has .*, which is not a schema"
    with pytest.raises(ConfigError, match=expected):
        spec_from_marker((), {"output": {"write": schema}}, "t.py::t", rootdir=tmp_path)


def test_a_task_schema_names_crew_and_task_and_skips_other_crews() -> None:
    from types import SimpleNamespace

    from pydantic import BaseModel

    from pytest_crewguard.output_gates import output_violations

    class Brief(BaseModel):
        title: str

    def task_output(name: str, raw: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, description="", raw=raw, pydantic=None, json_dict=None)

    def run(crew: str, *outputs: SimpleNamespace) -> SimpleNamespace:
        final = outputs[-1]
        return SimpleNamespace(
            crew=crew, flow_step="step", output=final, task_outputs=list(outputs), rootdir=None
        )

    research = run("ResearchCrew", task_output("research", "plain notes"))
    write = run("WriteCrew", task_output("write", '{"title": 3}'))
    assert output_violations({"write": Brief}, research) == []
    (found,) = output_violations({"write": Brief}, write)
    assert found.message.startswith(
        "the output of crew 'WriteCrew', flow step 'step', task 'write' does not match Brief:"
    )
    assert found.details == {"crew": "WriteCrew", "task": "write"}
    # A schema without a task is the flow's, not that of every crew inside it.
    assert output_violations(Brief, research) == []


def test_roles_from_folded_yaml_lose_their_trailing_newline() -> None:
    from pytest_crewguard.events import clean

    assert clean("Researcher\n") == "Researcher"
    assert clean("  Senior  researcher \n") == "Senior  researcher"
    assert clean(" \n") is None and clean(None) is None


def test_kickoff_refuses_a_flow_and_says_which_method_runs_it(lancedb_loaded: None, tmp_path: Path) -> None:
    from crewai import Agent, Crew
    from crewai.flow.flow import Flow, start

    from pytest_crewguard.flow_run import build_flow
    from pytest_crewguard.guard import CrewGuard
    from pytest_crewguard.guard_session import GuardSession

    class OneStep(Flow):  # type: ignore[type-arg]
        @start()
        def go(self) -> str:
            return "done"

    guard = CrewGuard(GuardSession.for_test("t.py::t", rootdir=tmp_path, storage_root=tmp_path / "storage"))
    with pytest.raises(TypeError, match=r"gave OneStep; for a Flow use crewguard.kickoff_flow\(\)"):
        guard.kickoff(lambda: OneStep())
    with pytest.raises(TypeError, match=r"got None, of type NoneType, e.g. crewguard.kickoff\(make_crew\)"):
        guard.kickoff(None)  # type: ignore[arg-type]
    assert isinstance(build_flow(OneStep), OneStep)  # the class itself is a factory
    agent = Agent(role="R", goal="g", backstory="b", llm="gpt-4o-mini")
    with pytest.raises(TypeError, match=r"gave Crew \(for a crew use crewguard.kickoff\)"):
        build_flow(lambda: Crew(agents=[agent], tasks=[]))


def test_a_task_named_like_a_schema_keyword_is_told_how_to_check_it(tmp_path: Path) -> None:
    # {"format": Brief} was read as a JSON Schema and refused with the validator's words.
    from pydantic import BaseModel

    from pytest_crewguard.errors import ConfigError
    from pytest_crewguard.marker import spec_from_marker

    class Brief(BaseModel):
        summary: str

    with pytest.raises(ConfigError, match=r"its key 'format' is a JSON Schema keyword.*task='format'\)"):
        spec_from_marker((), {"output": {"format": Brief}}, "t.py::t", rootdir=tmp_path)
    assert spec_from_marker((), {"output": {"type": "object", "title": "Brief"}}, "t.py::t", rootdir=tmp_path)
