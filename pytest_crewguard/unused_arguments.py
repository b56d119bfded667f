"""Marker arguments a test gave that did nothing: each fails it, not a pass on nothing.

``faults=`` that answered no request (a misspelt agent, task or model), ``repeat=N`` on crews the
test kicked off itself (run once, compared with nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .verdict import Gate, Violation

if TYPE_CHECKING:
    from .guard_verdicts import GuardVerdicts


def unused_arguments(guard: GuardVerdicts) -> list[Violation]:
    """The marker's arguments that did nothing in the test that just ended."""
    return _faults_unused(guard) + _repeat_unused(guard)


def _repeat_unused(guard: GuardVerdicts) -> list[Violation]:
    """``repeat=N`` where nothing was repeated: only ``crewguard.kickoff`` (and
    ``kickoff_flow``) run a factory N times; a test that kicks off crews itself ran them once
    and compared nothing."""
    if guard.spec.repeat <= 1 or guard.repeat_summaries or guard.assembly.fixture_flows:
        return []
    message = (
        f"repeat={guard.spec.repeat} repeated nothing in {guard.nodeid}: it applies to "
        "crewguard.kickoff(factory) and crewguard.kickoff_flow(factory), which build and run the "
        "crew that many times; this test ran "
        + ("its crews itself, once each" if guard.assembly.all_runs() else "no crew")
        + ". Kick the crew off with crewguard.kickoff(make_crew), or drop repeat=."
    )
    return [Violation(Gate.REPEAT, message)]


def _faults_unused(guard: GuardVerdicts) -> list[Violation]:
    """``faults=`` in replay that answered no request: the test checked nothing it meant to
    (a misspelt agent, task or model, or no LLM call at all)."""
    wire = guard.wire
    if wire is None or wire.injector is None or wire.fault_log.faults:
        return []
    plan = wire.injector.plan
    scope = ", ".join(f"{k} {v!r}" for k, v in (("agent", plan.agent), ("task", plan.task),
                                                 ("model", plan.model)) if v is not None)
    calls = guard.assembly.calls()
    seen = sorted({f"{c.agent or '-'} / {c.task or '-'} / {c.model}" for c in calls})
    message = (
        f"faults= answered no request in {guard.nodeid}: "
        + (f"no LLM request matched {scope}" if scope else "the test made no LLM request")
        + (f"; its LLM calls (agent / task / model): {', '.join(seen)}" if seen else "")
        + ". Name an agent, task or model the test's calls have, or drop faults= from this test."
    )
    return [Violation(Gate.PROVIDER_FAULT, message)]
