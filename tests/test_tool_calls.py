"""Tool calls: what the agents called, in which order, with which arguments; the tool gates
(forbidden tools, call limits, swallowed tool errors) and delegation between agents."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.events import CrewEvent
from pytest_crewguard.limits import tool_violations
from pytest_crewguard.marker import GuardSpec, spec_from_marker
from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.report import report_data, table
from pytest_crewguard.run import GuardedRun
from pytest_crewguard.session import CrewguardSession, GuardedTest
from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply
from pytest_crewguard.tool_assertions import assert_tools, tools_problem
from pytest_crewguard.tool_calls import ToolInvocation, build_tool_calls, delegations
from pytest_crewguard.verdict import Gate

from .conftest import crew_test_file, read_dump

R, W = "Researcher", "Writer"
SEARCH = ToolInvocation(R, "research", "search", {"query": "AI agents", "limit": 5}, "3 hits")
LOOKUP = ToolInvocation(R, "research", "lookup", {"q": "agents 2026"}, "facts")
SAVE = ToolInvocation(W, "write", "save_draft", {"text": "draft"}, "saved")
CALLS = [SEARCH, LOOKUP, SAVE]


# -- assert_tools, in process ------------------------------------------------------------------


def test_exact_sequence_passes_and_a_wrong_one_shows_a_diff() -> None:
    assert_tools(CALLS, ["search", "lookup", "save_draft"])
    with pytest.raises(AssertionError) as failure:
        assert_tools(CALLS, ["search", "save_draft", "lookup"])
    text = str(failure.value)
    assert "assert_tools(mode='exact'): 3 expected, 3 made" in text
    # Matched calls, then what was made but not expected (+) and expected but not made (-),
    # each actual call with its agent and task.
    assert text.splitlines()[1:] == [
        "    search(query='AI agents', limit=5)  by agent 'Researcher' on task 'research'",
        "  + lookup(q='agents 2026')  by agent 'Researcher' on task 'research'",
        "    save_draft(text='draft')  by agent 'Writer' on task 'write'",
        "  - lookup",
    ]
    with pytest.raises(AssertionError, match="2 expected, 3 made"):
        assert_tools(CALLS, ["search", "lookup"])  # exact: an extra call fails


def test_subsequence_allows_other_calls_between() -> None:
    assert_tools(CALLS, ["search", "save_draft"], mode="subsequence")
    assert_tools(CALLS, [], mode="subsequence")
    problem = tools_problem(CALLS, ["save_draft", "search"], mode="subsequence")
    assert problem and "  - search" in problem and "allowed in subsequence mode" in problem


def test_set_ignores_order_and_counts_but_not_missing_or_extra_tools() -> None:
    assert_tools([*CALLS, SEARCH], ["save_draft", "lookup", "search"], mode="set")
    problem = tools_problem(CALLS, ["search", "lookup", "delete"], mode="set")
    assert problem is not None
    assert "  - delete   (expected, never called)" in problem
    extra = "  + save_draft(text='draft')  by agent 'Writer' on task 'write'   (called, not expected)"
    assert extra in problem


def test_argument_patterns_exact_regex_and_callable() -> None:
    assert_tools(CALLS[:2], [("search", {"query": "AI agents"}), ("lookup", {"q": re.compile(r"20\d\d")})])
    assert_tools(CALLS[:1], [("search", {"limit": lambda n: n <= 5})])
    with pytest.raises(AssertionError) as failure:
        assert_tools(CALLS[:1], [("search", {"query": re.compile("quantum"), "limit": 5})])
    assert "  - search(query=/quantum/, limit=5)" in str(failure.value)
    assert tools_problem(CALLS[:1], [("search", {"missing": None})]) is not None  # absent argument


def test_names_compare_as_crewai_sends_them_and_filters_narrow_the_calls() -> None:
    delegate = ToolInvocation("Lead", "plan", "delegate_work_to_coworker", {"coworker": "Writer"})
    assert_tools([delegate], ["Delegate work to coworker"])
    assert_tools(CALLS, ["save_draft"], agent=W)
    assert_tools(CALLS, ["search", "lookup"], task="research")
    problem = tools_problem(CALLS, ["lookup"], agent=R)
    assert problem and problem.startswith("assert_tools(mode='exact') (agent='Researcher')")


def test_bad_arguments_are_readable() -> None:
    with pytest.raises(ValueError, match="mode='strict'; expected one of exact, subsequence, set"):
        assert_tools(CALLS, ["search"], mode="strict")
    with pytest.raises(TypeError, match="neither a tool name nor"):
        assert_tools(CALLS, [("search",)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="is a string; pass a list"):
        assert_tools(CALLS, "search")


# -- building tool calls from events -------------------------------------------------------------


def _event(i: int, kind: str, **fields: object) -> CrewEvent:
    base = CrewEvent(
        event_id=f"e{i}", type=kind, sequence=i, parent_id=None, agent_role=R, task_name="research"
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def test_events_become_calls_with_errors_cache_hits_and_the_asking_llm_call() -> None:
    events = [
        _event(1, "llm_call_started"),
        _event(2, "tool_usage_started", tool_name="search", tool_input={"query": "x"}, cache_id=7),
        _event(3, "tool_usage_finished", tool_name="search", started_id="e2", result="hits"),
        _event(4, "llm_call_started"),
        _event(5, "tool_usage_started", tool_name="search", tool_input={"query": "x"}, cache_id=7),
        _event(6, "tool_usage_finished", tool_name="search", started_id="e5", result="hits"),
        _event(7, "tool_usage_started", tool_name="fetch", tool_args="{'url': 'u'}", cache_id=7),
        _event(
            8, "tool_usage_error", tool_name="fetch", started_id="e7", error="503", error_type="ValueError"
        ),
    ]
    calls = build_tool_calls(events, ["e1", "e4"])
    assert [(c.tool, c.args, c.cached, c.llm_call) for c in calls] == [
        ("search", {"query": "x"}, False, 0),
        ("search", {"query": "x"}, True, 1),  # the same tool cache already held the answer
        ("fetch", {"url": "u"}, False, 1),
    ]
    assert calls[2].error == "ValueError: 503" and calls[2].result is None
    assert calls[0].result == "hits" and calls[0].error is None


def test_delegations_name_the_coworker_as_the_crew_spells_it() -> None:
    calls = [
        ToolInvocation("Lead", "plan", "delegate_work_to_coworker", {"coworker": " writer ", "task": "t"}),
        ToolInvocation(
            "Lead", "plan", "ask_question_to_coworker", {"coworker": "Researcher", "question": "q"}
        ),
        ToolInvocation("Lead", "plan", "search", {"query": "q"}),
    ]
    assert delegations(calls, ["Lead", "Writer", "Researcher"]) == [
        ("Lead", "Writer", "plan"),
        ("Lead", "Researcher", "plan"),
    ]


# -- gates, in process ---------------------------------------------------------------------------


def _run(*calls: ToolInvocation) -> GuardedRun:
    return GuardedRun(output=None, calls=[], elapsed_s=0.0, projected_s=None, tool_calls=list(calls))


def test_tool_gates() -> None:
    failed = replace(LOOKUP, error="ValueError: upstream 503", result=None)
    runs = [_run(SEARCH, failed), _run(SEARCH, SAVE)]
    found = {
        v.gate: v for v in tool_violations(GuardSpec(forbidden_tools=("save_draft",), max_tool_calls=3), runs)
    }
    assert set(found) == {Gate.FORBIDDEN_TOOL, Gate.MAX_TOOL_CALLS, Gate.TOOL_ERROR}
    assert "save_draft(text='draft')  by agent 'Writer' on task 'write'" in found[Gate.FORBIDDEN_TOOL].message
    assert (
        "4 tool calls are over max_tool_calls=3 (search 2, lookup 1, save_draft 1)"
        in found[Gate.MAX_TOOL_CALLS].message
    )
    assert "lookup raised ValueError: upstream 503" in found[Gate.TOOL_ERROR].message
    per_tool = tool_violations(
        GuardSpec(max_tool_calls={"search": 1, "lookup": 1}, allow_tool_errors=True), runs
    )
    assert [v.message.splitlines()[0] for v in per_tool] == [
        "tool 'search' was called 2 times, over max_tool_calls['search']=1; the last calls:"
    ]
    assert tool_violations(GuardSpec(allow_tool_errors=True), runs) == []


def test_marker_arguments_are_checked() -> None:
    spec = spec_from_marker((), {"forbidden_tools": "rm", "max_tool_calls": {"search": 2}}, "t")
    assert spec.forbidden_tools == ("rm",) and spec.max_tool_calls == {"search": 2}
    bad = [
        ({"forbidden_tools": 3}, "argument forbidden_tools=3: expected a list of tool names"),
        ({"forbidden_tools": [""]}, "is not a tool name"),
        ({"max_tool_calls": -1}, "argument max_tool_calls=-1: expected a whole number >= 0"),
        ({"max_tool_calls": {"search": 1.5}}, "argument max_tool_calls['search']=1.5"),
        ({"allow_tool_errors": "yes"}, "argument allow_tool_errors='yes': expected True or False"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ConfigError, match=re.escape(message)):
            spec_from_marker((), kwargs, "t")


def test_table_and_report_count_tool_calls() -> None:
    session = CrewguardSession(prices=PriceTable())
    session.add(GuardedTest.build("t.py::a", [], [_run(SEARCH, LOOKUP)]))
    session.add(GuardedTest.build("t.py::b", [], [_run(SAVE)]))
    header, _, row_a, row_b, total = table(session).splitlines()[:5]
    tools_at = header.index("tools")
    assert [line[tools_at : tools_at + 5].strip() for line in (row_a, row_b, total)] == ["2", "1", "3"]
    data = report_data(session)
    assert data["totals"]["tool_calls"] == 3 and data["tests"]["t.py::a"]["tool_calls"] == 2


# -- real crews: record, then replay -------------------------------------------------------------

SCRIPTS = {
    "SEQ": [
        Reply.tool("search", query="AI agents"),
        Reply.tool("lookup", q="agents 2026"),
        Reply.tool("search", query="AI agents"),  # the crew's tool cache answers this one
        Reply(text="Summary of agents."),
    ],
    "DEL": [Reply.tool("delete_records", table="users"), Reply(text="Cleaned.")],
    "ERR": [Reply.tool("fetch", url="https://example.invalid/data"), Reply(text="Gave up on the data.")],
    "DLG": [
        Reply.tool(
            "delegate_work_to_coworker", task="Write a haiku", context="about agents", coworker="Writer"
        ),
        Reply(text="Final: a haiku about agents."),
    ],
}


def respond(request: ReceivedRequest) -> Reply:
    text = request.prompt_text
    if "You are Writer" in text:
        return Reply(text="A haiku about agents.")
    done = sum(1 for m in request.body.get("messages", []) if m.get("role") == "tool")
    for key, steps in SCRIPTS.items():
        if f"Task {key}" in text:
            return steps[min(done, len(steps) - 1)]
    raise AssertionError(f"no script for: {text[:300]}")


BODY = '''
import re
import threading
from dataclasses import asdict


@tool("search")
def search(query: str) -> str:
    """Search the notes."""
    return f"3 notes on {query}"


@tool("lookup")
def lookup(q: str) -> str:
    """Look a fact up."""
    return "agents plan before they act"


@tool("delete_records")
def delete_records(table: str) -> str:
    """Delete every record of a table."""
    return f"deleted {table}"


@tool("fetch")
def fetch(url: str) -> str:
    """Fetch a URL."""
    raise ValueError("upstream answered 503")


def crew_for(key, tools):
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher",
                  llm=make_llm(), tools=list(tools))
    task = Task(name="research", description=f"Task {key}: do the work",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task], cache=True)  # CrewAI's tool cache is opt-in


def dump_tools(run, name):
    with open(os.path.join(os.path.dirname(__file__), name + ".json"), "w") as f:
        json.dump({"tool_calls": [asdict(c) for c in run.tool_calls],
                   "delegations": [list(d) for d in run.delegations]}, f)


@pytest.mark.crewguard
def test_sequence(crewguard):
    run = crewguard.kickoff(lambda: crew_for("SEQ", [search, lookup]))
    run.assert_tools(["search", ("lookup", {"q": re.compile("2026")}), ("search", {"query": "AI agents"})])
    run.assert_tools(["lookup"], mode="subsequence", agent="Researcher")
    run.assert_tools(["lookup", "search"], mode="set")
    assert [c.llm_call for c in run.tool_calls] == [0, 1, 2]
    assert [c.cached for c in run.tool_calls] == [False, False, True]
    assert crewguard.tool_calls == run.tool_calls
    dump_tools(run, "sequence")


@pytest.mark.crewguard
def test_sequence_in_another_order(crewguard):
    run = crewguard.kickoff(lambda: crew_for("SEQ", [search, lookup]))
    run.assert_tools(["lookup", "search"])


def cleanup_job():
    crew_for("DEL", [delete_records]).kickoff()  # the application's own kickoff


@pytest.mark.crewguard(forbidden_tools=["delete_records"])
def test_forbidden_in_background(crewguard):
    worker = threading.Thread(target=cleanup_job)
    worker.start()
    worker.join(timeout=60)


@pytest.mark.crewguard
def test_tool_error(crewguard):
    run = crewguard.kickoff(lambda: crew_for("ERR", [fetch]))


@pytest.mark.crewguard(allow_tool_errors=True)
def test_tool_error_allowed(crewguard):
    run = crewguard.kickoff(lambda: crew_for("ERR", [fetch]))
    assert run.output.raw == "Gave up on the data."
    dump_tools(run, "error")


def lead_crew():
    lead = Agent(role="Lead", goal="Coordinate", backstory="Editor", llm=make_llm(),
                 allow_delegation=True)
    writer = Agent(role="Writer", goal="Write", backstory="Poet", llm=make_llm())
    task = Task(name="plan", description="Task DLG: get a haiku written", expected_output="A haiku",
                agent=lead)
    return Crew(agents=[lead, writer], tasks=[task])


@pytest.mark.crewguard
def test_delegation(crewguard):
    run = crewguard.kickoff(lead_crew)
    assert run.delegations == [("Lead", "Writer", "plan")]
    dump_tools(run, "delegation")
'''

EXPECTED = {"passed": 3, "failed": 3}


def _check_failures(result: pytest.RunResult) -> None:
    out = result.stdout.str()
    # The wrong order: a diff, each actual call with its agent and task.
    assert "assert_tools(mode='exact'): 2 expected, 3 made" in out
    assert "+ search(query='AI agents')  by agent 'Researcher' on task 'research'" in out
    # The forbidden tool, called in the application's thread, named with agent, task, arguments.
    assert "forbidden tool 'delete_records' was called 1 time:" in out
    assert "1. delete_records(table='users')  by agent 'Researcher' on task 'research'" in out
    # The tool error CrewAI swallowed.
    assert "1 tool call raised; CrewAI fed the error back to the model" in out
    assert "1. fetch raised ValueError: upstream answered 503" in out


def test_tool_calls_record_and_replay(pytester: pytest.Pytester, provider) -> None:
    server = provider(respond)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, BODY))
    recorded = pytester.runpytest("--crewguard-record-mode=once", "-p", "no:randomly")
    recorded.assert_outcomes(**EXPECTED)
    _check_failures(recorded)
    dumps = {name: read_dump(pytester, name) for name in ("sequence", "error", "delegation")}
    assert [c["tool"] for c in dumps["sequence"]["tool_calls"]] == ["search", "lookup", "search"]
    assert dumps["sequence"]["tool_calls"][0]["result"] == "3 notes on AI agents"
    (failed,) = dumps["error"]["tool_calls"]
    assert failed["error"] == "ValueError: upstream answered 503" and failed["args"] == {
        "url": "https://example.invalid/data"
    }
    assert dumps["delegation"]["delegations"] == [["Lead", "Writer", "plan"]]
    assert "tools" in recorded.stdout.str()

    server.stop()
    replayed = pytester.runpytest("-p", "no:randomly")
    replayed.assert_outcomes(**EXPECTED)
    _check_failures(replayed)
    assert {name: read_dump(pytester, name) for name in dumps} == dumps


def test_arguments_in_any_form_become_a_dict() -> None:
    from pytest_crewguard.tool_calls import parse_args

    assert parse_args('{"q": "x"}') == {"q": "x"}
    assert parse_args("{'q': 'x'}") == {"q": "x"}  # the ReAct path's Python-literal text
    assert parse_args("just text") == {"input": "just text"}
    assert parse_args("[1, 2]") == {"input": "[1, 2]"}
    assert parse_args(None) == {} and parse_args("") == {}
    assert parse_args("{" * 100_000) == {"input": "{" * 100_000}  # deeply nested junk: no crash
