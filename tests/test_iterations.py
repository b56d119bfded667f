"""Iterations and silent max_iter: real crews whose model keeps calling a tool, recorded and replayed.

CrewAI (1.15.30) counts one iteration per agent LLM call; once ``max_iter`` of them have run it
makes one more call, with no tools and no agent attached, whose last user message is its
``force_final_answer`` prompt, and the task's output is whatever the model says then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from .conftest import crew_test_file, read_dump

TOOL = """
@tool("lookup")
def lookup(q: str) -> str:
    \"\"\"Look something up.\"\"\"
    return "nothing useful"


def make_loop_crew():
    return make_crew(max_iter=3, tools=[lookup])
"""

LOOP = (
    TOOL
    + """

def make_two_agent_crew():
    researcher = Agent(role="Researcher", goal="Research", backstory="Expert researcher", llm=make_llm())
    writer = Agent(role="Writer", goal="Write", backstory="Writer", llm=make_llm(), tools=[lookup],
                   max_iter=3)
    research = Task(name="research", description="Research AI agents", expected_output="Notes",
                    agent=researcher)
    write = Task(name="write", description="Write about AI agents", expected_output="Article",
                 agent=writer)
    return Crew(agents=[researcher, writer], tasks=[research, write])


@pytest.mark.crewguard
def test_loop(crewguard):
    try:
        crewguard.kickoff(make_loop_crew, inputs={"topic": "AI agents"})
    finally:
        dump(crewguard.runs[0], "loop")


@pytest.mark.crewguard(allow_max_iter=True)
def test_loop_allowed(crewguard):
    run = crewguard.kickoff(make_loop_crew, inputs={"topic": "AI agents"})
    dump(run, "loop_allowed")
    assert run.iterations == {("Researcher", "research"): 3}
    assert run.max_iter_hits == [("Researcher", "research")]
    assert run.output.raw == "best answer"


@pytest.mark.crewguard
def test_second_agent_loops(crewguard):
    try:
        crewguard.kickoff(make_two_agent_crew)
    finally:
        dump(crewguard.runs[0], "two")
"""
)


def keeps_calling_the_tool(req: ReceivedRequest) -> Reply:
    return Reply.tool("lookup", q="x") if req.body.get("tools") else Reply(text="best answer")


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """Each inner test's outcome, by test name."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    return {r.nodeid.split("::")[-1]: r.outcome for r in reports if r.when == "call"}


def cassette_requests(pytester: pytest.Pytester, test: str) -> list[dict[str, Any]]:
    """The JSON bodies of a recorded cassette's chat requests, in order."""
    path = Path(pytester.path) / "cassettes" / "test_crew" / f"{test}.yaml"
    data = yaml.safe_load(path.read_text())
    return [
        json.loads(i["request"]["body"])
        for i in data["interactions"]
        if i["request"]["uri"].endswith("/chat/completions")
    ]


def last_user_text(body: dict[str, Any]) -> str:
    return str([m for m in body["messages"] if m["role"] == "user"][-1]["content"])


def test_max_iter_hit_is_detected_attributed_and_fails(pytester: pytest.Pytester, provider: Any) -> None:
    server = provider(keeps_calling_the_tool)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, LOOP))
    recorded = pytester.runpytest("--crewguard-record-mode=once")
    assert outcomes(recorded) == {
        "test_loop": "failed",
        "test_loop_allowed": "passed",
        "test_second_agent_loops": "failed",
    }
    live = {name: read_dump(pytester, name) for name in ("loop", "loop_allowed", "two")}
    server.stop()

    replayed = pytester.runpytest()
    assert outcomes(replayed) == outcomes(recorded)
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_loop _*",
            "crewguard: agent 'Researcher' reached max_iter=3 on task 'research' and CrewAI forced "
            "a final answer",
            "  last tool calls:",
            "    lookup({'q': 'x'})",
            "    lookup({'q': 'x'})",
            "    lookup({'q': 'x'})",
            "  The task's output is whatever the model said when told to stop.*allow_max_iter=True*",
        ]
    )
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_second_agent_loops _*",
            "crewguard: agent 'Writer' reached max_iter=3 on task 'write' and CrewAI forced a final answer",
            "  last tool calls:",
            "    lookup({'q': 'x'})",
        ]
    )
    assert (
        "agent 'Researcher' reached max_iter" not in replayed.stdout.str().split("test_second_agent_loops")[1]
    )

    for name in ("loop", "loop_allowed"):
        run = read_dump(pytester, name)
        assert run["calls"] == live[name]["calls"]
        assert run["iterations"] == {"Researcher/research": 3}
        assert run["max_iter_hits"] == [["Researcher", "research"]]
        # Three agent rounds that call the tool, then the forced call: only that one is marked,
        # and it is attributed to the agent and task although CrewAI attaches neither to it.
        assert [c["forced_final_answer"] for c in run["calls"]] == [False, False, False, True]
        assert [c["agent_round"] for c in run["calls"]] == [True, True, True, False]
        assert {(c["agent"], c["task"]) for c in run["calls"]} == {("Researcher", "research")}

    two = read_dump(pytester, "two")
    assert two["iterations"] == {"Researcher/research": 1, "Writer/write": 3}
    assert two["max_iter_hits"] == [["Writer", "write"]]
    assert [(c["agent"], c["forced_final_answer"]) for c in two["calls"]] == [
        ("Researcher", False),
        ("Writer", False),
        ("Writer", False),
        ("Writer", False),
        ("Writer", True),
    ]
    # The recording really is CrewAI's forced final answer: no tools offered, its prompt last.
    from crewai.utilities.i18n import I18N_DEFAULT

    forced = cassette_requests(pytester, "test_loop")[-1]
    assert "tools" not in forced
    assert last_user_text(forced) == I18N_DEFAULT.errors("force_final_answer")

    # The table: most iterations, max_iter hits, and the gate that failed.
    replayed.stdout.fnmatch_lines(
        [
            "*test*calls*in tok*out tok*cost*max iter*max_iter hits*time*projected*verdict*",
            "*test_crew.py::test_loop *4 *480 *120 *$0.000144 *3 *1 *s *s *FAILED max_iter",
            "*test_crew.py::test_loop_allowed *4 *480 *120 *$0.000144 *3 *1 *s *s *passed",
            "*test_crew.py::test_second_agent_loops *5 *600 *150 *$0.000180 *3 *1 *s *s *FAILED max_iter",
        ]
    )


TRANSLATED = (
    TOOL
    + """
GERMAN = "Jetzt MUSST du deine absolut beste endgültige Antwort geben, ohne weitere Werkzeuge."


@pytest.mark.crewguard
def test_translated(crewguard, monkeypatch):
    # CrewAI's max_iter path reads this object; a translation is what it holds.
    from crewai.utilities.agent_utils import I18N_DEFAULT

    monkeypatch.setitem(I18N_DEFAULT._prompts["errors"], "force_final_answer", GERMAN)
    try:
        crewguard.kickoff(make_loop_crew, inputs={"topic": "AI agents"})
    finally:
        dump(crewguard.runs[0], "translated")


def make_crew_with_prompt_file():
    crew = make_loop_crew()
    return Crew(agents=crew.agents, tasks=crew.tasks,
                prompt_file=os.path.join(os.path.dirname(__file__), "prompts_fr.json"))


@pytest.mark.crewguard
def test_prompt_file(crewguard):
    try:
        crewguard.kickoff(make_crew_with_prompt_file, inputs={"topic": "AI agents"})
    finally:
        dump(crewguard.runs[0], "prompt_file")
"""
)

FRENCH = "Maintenant tu DOIS donner ta meilleure réponse finale."


def test_detection_follows_crewai_i18n_not_an_english_copy(pytester: pytest.Pytester, provider: Any) -> None:
    from crewai.utilities.agent_utils import I18N_DEFAULT

    from pytest_crewguard.ledger import forced_final_answer_texts

    english = I18N_DEFAULT.errors("force_final_answer")
    assert english.strip() in forced_final_answer_texts()

    server = provider(keeps_calling_the_tool)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, TRANSLATED))
    (Path(pytester.path) / "prompts_fr.json").write_text(
        json.dumps({"errors": {"force_final_answer": FRENCH}}), encoding="utf-8"
    )
    recorded = pytester.runpytest("--crewguard-record-mode=once")
    assert outcomes(recorded) == {"test_translated": "failed", "test_prompt_file": "failed"}
    server.stop()

    # What CrewAI 1.15.30 really sends: the translation held by I18N_DEFAULT, while a crew's
    # prompt_file does not reach the forced-final-answer prompt at all.
    german = last_user_text(cassette_requests(pytester, "test_translated")[-1])
    assert german.startswith("Jetzt MUSST du") and english not in german
    assert last_user_text(cassette_requests(pytester, "test_prompt_file")[-1]) == english
    assert I18N_DEFAULT.errors("force_final_answer") == english  # the test's translation was undone

    replayed = pytester.runpytest("--crewguard-report=report.json")
    assert outcomes(replayed) == {"test_translated": "failed", "test_prompt_file": "failed"}
    for name in ("translated", "prompt_file"):
        run = read_dump(pytester, name)
        assert [c["forced_final_answer"] for c in run["calls"]] == [False, False, False, True]
        assert run["max_iter_hits"] == [["Researcher", "research"]]
    replayed.stdout.fnmatch_lines(
        [
            "*_ test_translated _*",
            "crewguard: agent 'Researcher' reached max_iter=3 on task 'research' and CrewAI forced "
            "a final answer",
        ]
    )
    # The table and the report are built after the test's monkeypatch is undone, and still
    # know the forced call.
    replayed.stdout.fnmatch_lines(
        ["*test_crew.py::test_translated *4 *480 *120 *$0.000144 *3 *1 *FAILED max_iter"]
    )
    report = json.loads((Path(pytester.path) / "report.json").read_text())
    calls = report["tests"]["test_crew.py::test_translated"]["calls"]
    assert [c["forced_final_answer"] for c in calls] == [False, False, False, True]


ROUNDS = (
    TOOL
    + """

@pytest.mark.crewguard(max_iterations=2)
def test_three_rounds(crewguard):
    try:
        crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "AI agents"})
    finally:
        dump(crewguard.runs[0], "rounds")


@pytest.mark.crewguard(max_iterations=3, cassette="test_crew/test_three_rounds.yaml")
def test_three_rounds_allowed(crewguard):
    run = crewguard.kickoff(lambda: make_crew(tools=[lookup]), inputs={"topic": "AI agents"})
    assert run.iterations == {("Researcher", "research"): 3}
    assert run.max_iter_hits == []
"""
)


def two_tool_calls_then_answer(req: ReceivedRequest) -> Reply:
    results = sum(1 for m in req.body.get("messages", []) if m.get("role") == "tool")
    if req.body.get("tools") and results < 2:
        return Reply.tool("lookup", q=f"x{results}")
    return Reply(text="AI agents plan and act.")


def test_max_iterations_fails_naming_agent_task_and_count(pytester: pytest.Pytester, provider: Any) -> None:
    server = provider(two_tool_calls_then_answer)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, ROUNDS))
    recorded = pytester.runpytest("--crewguard-record-mode=once", "-k", "not allowed")
    assert outcomes(recorded) == {"test_three_rounds": "failed"}
    server.stop()

    replayed = pytester.runpytest()
    assert outcomes(replayed) == {"test_three_rounds": "failed", "test_three_rounds_allowed": "passed"}
    replayed.stdout.fnmatch_lines(
        ["crewguard: agent 'Researcher' on task 'research' used 3 rounds, over max_iterations=2"]
    )
    run = read_dump(pytester, "rounds")
    assert run["iterations"] == {"Researcher/research": 3}
    assert run["max_iter_hits"] == []
    assert not any(c["forced_final_answer"] for c in run["calls"])
    replayed.stdout.fnmatch_lines(
        ["*test_crew.py::test_three_rounds *3 *360 *90 *3 *0 *FAILED max_iterations"]
    )
