"""``repeat=N``: later runs compared with the first (leaked text), and the heap they retain."""

from __future__ import annotations

import itertools
import json
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import vcr
import yaml

import pytest_crewguard
from pytest_crewguard.heap import HeapMeter, RunBookkeeping
from pytest_crewguard.leaks import compare_runs, report
from pytest_crewguard.sent_requests import SentRequest, request_texts, response_texts
from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply

from .conftest import crew_test_file, read_dump

# -- the comparison on its own: request/response bodies as a provider sees them ----------------


def _openai_call(number: int, messages: list[dict[str, Any]], answer: dict[str, Any]) -> SentRequest:
    request = json.dumps({"model": "gpt-4o-mini", "messages": messages})
    response = json.dumps({"id": f"chatcmpl-{number}", "choices": [{"index": 0, "message": answer}]})
    return SentRequest(
        "LLM call",
        number,
        ("LLM call", "task:research"),
        "Researcher / research",
        request_texts(request),
        response_texts(response),
    )


def _tool_run(finding: str, tool_result: str, call_id: str) -> list[SentRequest]:
    prompt = [
        {"role": "system", "content": "You are Researcher."},
        {"role": "user", "content": "Research AI agents"},
    ]
    tool_call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": "note", "arguments": json.dumps({"finding": finding})},
            }
        ],
    }
    return [
        _openai_call(1, prompt, tool_call),
        _openai_call(
            2,
            [*prompt, tool_call, {"role": "tool", "tool_call_id": call_id, "content": tool_result}],
            {"role": "assistant", "content": "Done."},
        ),
    ]


def test_identical_runs_pass_even_with_different_ids_and_timestamps():
    one = _tool_run(
        "Agents plan", "Saved at 2026-01-02T10:00:00 as 3f2b7c1e-0a4b-4c8d-9e6f-1a2b3c4d5e6f", "call_1_0"
    )
    two = _tool_run(
        "Agents plan", "Saved at 2026-01-02T10:00:07 as 9d8c7b6a-5f4e-4d3c-8b2a-0f1e2d3c4b5a", "call_9_0"
    )
    assert compare_runs([one, two]) == ([], [])


def test_text_only_an_earlier_run_produced_is_a_leak():
    one = _tool_run("Agents plan their steps", "Findings so far: Agents plan their steps", "call_1")
    two = _tool_run(
        "Agents plan their steps",
        "Findings so far: Agents plan their steps; Agents plan their steps",
        "call_2",
    )
    leaks, differences = compare_runs([one, two])
    assert [(leak.text, leak.run, leak.call.number, leak.where.path, leak.where.role) for leak in leaks] == [
        ("Agents plan their steps", 2, 2, "messages[3].content", "tool")
    ]
    assert leaks[0].source == "run 1, answer of LLM call 1 (Researcher / research)"
    assert differences == []


def test_after_the_provider_answers_differently_only_earlier_answers_are_looked_for():
    one = _tool_run(
        "Agents break goals into small steps first", "Saved: Agents break goals into small steps first", "a"
    )
    # A live model answered run 2 differently: its own new text is fine...
    two = _tool_run(
        "Agents call tools to reach real data sources",
        "Saved: Agents call tools to reach real data sources",
        "b",
    )
    assert compare_runs([one, two]) == ([], [])
    # ...but run 1's answer showing up in run 2's prompt is a leak.
    three = _tool_run(
        "Agents call tools to reach real data sources",
        "Saved: Agents break goals into small steps first; Agents call tools to reach real data sources",
        "c",
    )
    leaks, differences = compare_runs([one, three])
    assert [leak.text for leak in leaks] == ["Agents break goals into small steps first"]
    assert differences == []


def test_a_difference_that_no_run_produced_is_reported_with_a_diff():
    one = _tool_run("Agents plan", "Random pick: 17", "a")
    two = _tool_run("Agents plan", "Random pick: 4", "b")
    leaks, differences = compare_runs([one, two])
    assert leaks == []
    message = report(leaks, differences, repeat=2)
    assert message is not None
    assert "LLM call 2 (Researcher / research), request messages[3].content:" in message
    assert "- run 1: Random pick: 17" in message and "+ run 2: Random pick: 4" in message


# -- real crews: record with repeat=2, replay offline ------------------------------------------

LEAK_BODY = """
FINDINGS = []  # module level: outlives every run


@tool("note_finding")
def note_finding(finding: str) -> str:
    \"\"\"Record a finding; returns every finding recorded so far.\"\"\"
    FINDINGS.append(finding)
    return "Findings so far: " + "; ".join(FINDINGS)


@tool("note_finding_clean")
def note_finding_clean(finding: str) -> str:
    \"\"\"Record a finding; returns every finding recorded so far.\"\"\"
    findings = [finding]  # built per call: nothing outlives the run
    return "Findings so far: " + "; ".join(findings)


@pytest.mark.crewguard(repeat=2)
def test_leaky(crewguard):
    crewguard.kickoff(lambda: make_crew(tools=[note_finding]), inputs={"topic": "AI agents"})


@pytest.mark.crewguard(repeat=2)
def test_clean(crewguard):
    run = crewguard.kickoff(lambda: make_crew(tools=[note_finding_clean]), inputs={"topic": "AI agents"})
    assert len(crewguard.runs) == 2 and run is crewguard.runs[0]
    assert [r.llm_calls for r in crewguard.runs] == [2, 2]


@pytest.mark.crewguard(repeat=2, cassette="test_crew/test_clean.yaml")
def test_repeat_of_the_applications_kickoff(crewguard):
    make_crew(tools=[note_finding_clean]).kickoff(inputs={"topic": "AI agents"})  # not repeated
"""

FINDING = "Agents plan their steps before acting"


def notes_then_answers(request: ReceivedRequest) -> Reply:
    """The model records one finding with the tool, then answers (the same in every run)."""
    if any(m.get("role") == "tool" for m in request.body.get("messages", [])):
        return Reply(text="Summary: agents plan, act and remember.")
    tools = [t["function"]["name"] for t in request.body.get("tools", [])]
    return Reply.tool(tools[0], finding=FINDING) if tools else Reply(text="No tools.")


LEAK_MESSAGE = [
    "crewguard: repeat=2: run 2 sent text that only an earlier run produced; state outlives a run "
    "and is fed back into the next",
    f"  leaked text: '{FINDING}'",
    "    appeared in: run 2, LLM call 2 (Researcher / research), request messages[3].content (tool result)",
    f"      Findings so far: {FINDING}; {FINDING}",
    "    produced by: run 1, answer of LLM call 1 (Researcher / research)",
    "  Runs of one factory with the same inputs must not depend on each other.*",
]


def test_a_tool_that_keeps_a_module_level_list_fails_repeat(pytester, provider):
    server = provider(notes_then_answers)
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, LEAK_BODY))
    recorded = pytester.runpytest("--crewguard-record-mode=once", "-k", "not applications_kickoff")
    recorded.assert_outcomes(passed=1, failed=1)
    recorded.stdout.fnmatch_lines(["*_ test_leaky _*", *LEAK_MESSAGE])
    recorded.stdout.no_fnmatch_line("FAILED test_crew.py::test_clean*")
    # What the provider was really sent in run 2: run 1's finding, fed back by the tool.
    sent = [r.prompt_text for r in server.llm_requests]
    assert sum(f"{FINDING}; {FINDING}" in p for p in sent) == 1

    # Each cassette holds both runs' interactions, so replay plays the two runs again.
    cassette = Path(pytester.path) / "cassettes" / "test_crew" / "test_clean.yaml"
    assert (
        len(
            [
                i
                for i in yaml.safe_load(cassette.read_text())["interactions"]
                if i["request"]["uri"].endswith("/chat/completions")
            ]
        )
        == 4
    )
    server.stop()
    # Replay finds the same leak in the recorded runs (test_leaky alone: its second run is traced).
    replayed = pytester.runpytest("-k", "test_leaky")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["*_ test_leaky _*", *LEAK_MESSAGE])
    # repeat= on a crew the test kicks off itself ran it once and compared nothing: not a pass.
    itself = pytester.runpytest("-k", "test_repeat_of_the_applications_kickoff")
    itself.assert_outcomes(failed=1)
    itself.stdout.fnmatch_lines([
        "crewguard: repeat=2 repeated nothing in test_crew.py::test_repeat_of_the_applications_kickoff: "
        "it applies to crewguard.kickoff(factory) and crewguard.kickoff_flow(factory)*this test ran its "
        "crews itself, once each. Kick the crew off with crewguard.kickoff(make_crew), or drop repeat=."
    ])


# -- memory growth -----------------------------------------------------------------------------

GROWTH_BODY = """
HOARD = []  # module level: every run adds to it


def leaky_factory():
    HOARD.append(bytearray(2_000_000))  # 2 MB kept per run
    return make_crew()


@pytest.mark.crewguard(repeat=3)
def test_leaky_factory(crewguard):
    crewguard.kickoff(leaky_factory, inputs={"topic": "AI"})


@pytest.mark.crewguard(repeat=3)
def test_clean_factory(crewguard):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
    with open(os.path.join(os.path.dirname(__file__), "heap.json"), "w") as f:
        json.dump(crewguard._guard_session.repeat_summaries[0](), f)  # an internal: the heap samples
"""


# The verdict on its own, from heap samples: a limit that is raised, a heap that levels off.


def _meter(*samples: int) -> HeapMeter:
    return HeapMeter(samples=list(samples))


def test_growth_over_the_limit_fails_and_a_raised_limit_passes() -> None:
    leaky = _meter(100_000, 2_100_000, 4_100_000)
    message = leaky.verdict(1_000_000)
    assert message is not None
    assert message.startswith(
        "the Python heap kept growing across repeat=3 runs: 2.0 MB per run on average, "
        "over max_memory_growth=1000000 (1.0 MB) per run"
    )
    assert "    run 3: 4.1 MB (+2.0 MB)" in message.splitlines()
    assert leaky.verdict(10_000_000) is None


def test_a_heap_that_levels_off_after_a_one_off_cache_passes() -> None:
    # A cache filled once in run 2: the average is over the limit, the last step is not.
    assert _meter(0, 3_000_000, 3_020_000).verdict(1_000_000) is None
    assert _meter(0).verdict(1_000_000) is None


def test_a_factory_that_leaks_fails_max_memory_growth_and_a_clean_one_passes(pytester, provider):
    server = provider(lambda request: Reply(text="A short summary."))
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, GROWTH_BODY))
    result = pytester.runpytest("--crewguard-record-mode=once")
    # (A raised max_memory_growth letting the same leak pass is checked on the verdict alone,
    # above: each traced repeated run costs seconds.)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_leaky_factory _*",
            "crewguard: the Python heap kept growing across repeat=3 runs: 2.0 MB per run on average, "
            "over max_memory_growth=1000000 (1.0 MB) per run",
            "  heap retained after each run (traced from the end of run 1, after gc.collect()):",
            "    run 1: *",
            "    run 2: 2.* MB (+2.* MB)",
            "    run 3: 4.* MB (+2.* MB)",
            "  where it grew between run 1 and run 3:",
            "    */test_crew.py:*: +4.0 MB in +* blocks",
            "  Something keeps a reference to every run's objects*",
        ]
    )
    heap = read_dump(pytester, "heap")["heap"]
    steps = [b - a for a, b in itertools.pairwise(heap)]
    print("clean crew heap after each run:", heap, "growth per run:", steps)
    assert len(heap) == 3 and max(steps) < 1_000_000

    # Replayed offline the leak is found the same way (one test: each traced run is slow).
    server.stop()
    replayed = pytester.runpytest("-k", "test_leaky_factory")
    replayed.assert_outcomes(failed=1)
    replayed.stdout.fnmatch_lines(["crewguard: the Python heap kept growing across repeat=3 runs: 2.0 MB*"])


# -- which allocations are crewguard's bookkeeping, by package ---------------------------------


def _traced_allocations(source: str, filename: str, call: str) -> int:
    """Bytes still alive after ``call`` ran, from code compiled as if it lived in ``filename``."""
    namespace: dict[str, Any] = {}
    exec(compile(source, filename, "exec"), namespace)
    meter = HeapMeter()
    meter.start()
    try:
        meter.sample()
        kept = namespace[call]()
        grown = meter.sample()
    finally:
        meter.stop()
    assert kept
    return grown - meter.samples[0]


def test_any_module_of_the_package_is_left_out_of_the_heap_not_only_listed_ones():
    package = Path(pytest_crewguard.__file__).parent
    # A module nobody has written yet: the filter must cover it because of where it lives.
    new_module = str(package / "a_module_added_later.py")
    source = "KEPT = []\ndef keep():\n    KEPT.append(bytearray(3_000_000))\n    return KEPT\n"
    assert _traced_allocations(source, new_module, "keep") < 1_000_000
    # The same code in a test's own file is counted.
    assert _traced_allocations(source, str(Path(__file__).parent / "conftest.py"), "keep") > 2_900_000


def test_a_test_allocation_made_under_crewguards_kickoff_counts_as_the_tests():
    package = Path(pytest_crewguard.__file__).parent
    bookkeeping = RunBookkeeping()
    test_file = str(Path(__file__))
    inside = str(package / "guard.py")
    stdlib = json.__file__
    vcr_stub = str(Path(vcr.__file__).parent / "stubs" / "httpx_stubs.py")
    # Frames most recent first: a test's factory called from crewguard's kickoff is the test's...
    assert not bookkeeping.is_bookkeeping([(test_file, 3), (inside, 200)])
    assert not bookkeeping.is_bookkeeping([(stdlib, 1), (test_file, 3), (inside, 200)])
    # ...while crewguard's own records, and what vcrpy has a library read for it, are left out.
    assert bookkeeping.is_bookkeeping([(stdlib, 1), (inside, 10), (test_file, 3)])
    assert bookkeeping.is_bookkeeping([(httpx.__file__, 1), (vcr_stub, 10), (test_file, 3)])
    assert bookkeeping.is_bookkeeping([(tracemalloc.__file__, 1)])
    assert not bookkeeping.is_bookkeeping([(stdlib, 1)])
