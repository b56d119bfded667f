"""Building a test's :class:`GuardedRun` records from its wire exchanges and CrewAI events.

The ledger (every LLM call with its agent, task, tokens and cost) is rebuilt only when an
exchange or an event arrived since it was last read.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .events import CrewEvent, EventLog
from .fault_log import Scope, describe_fault, scope_id
from .ledger import LLMCall, build_calls, forced_final_answer_texts
from .pricing import PriceTable
from .run import GuardedRun
from .tool_calls import build_tool_calls, delegations
from .verdict import Violation
from .wire import HttpExchange, WireLog

LITE_AGENT = "lite_agent_execution_started"  # Agent.kickoff(): a run of one agent
KICKOFF_ENDS = (
    "crew_kickoff_completed",
    "crew_kickoff_failed",
    "lite_agent_execution_completed",
    "lite_agent_execution_error",
)


def _kickoff_of(exchange: HttpExchange) -> str | None:
    """The run an exchange belongs to: its crew's kickoff, else its ``Agent.kickoff()``."""
    return exchange.scope_id("crew_kickoff_started") or exchange.scope_id(LITE_AGENT)


class RunAssembly:
    """The test's runs and calls, assembled from what the wire and the event bus saw."""

    def __init__(
        self, wire: Callable[[], WireLog | None], events: EventLog, prices: PriceTable, rootdir: Path
    ) -> None:
        self._wire = wire  # set once the cassette is entered
        self.events = events
        self.prices = prices
        self.rootdir = rootdir
        self.prompt_files: set[str] = set()  # crews' prompt files: their forced-answer texts
        self.fixture_runs: list[GuardedRun] = []  # kickoffs made through the fixture
        self.fixture_flows: set[str] = set()  # flow_started ids of flows run by kickoff_flow
        self._ledger: tuple[tuple[int, int, tuple[str, ...]], list[LLMCall]] | None = None

    def calls(self) -> list[LLMCall]:
        """Every LLM call of the test so far."""
        wire = self._wire()
        if wire is None:
            return []
        force = forced_final_answer_texts(self.prompt_files) if "crewai" in sys.modules else []
        # The ledger only changes when an exchange or an event arrives; it is read after every
        # kickoff and by every property, so it is built once per change.
        key = (len(wire.calls), len(self.events.records), tuple(force))
        if self._ledger is None or self._ledger[0] != key:
            calls = build_calls(list(wire.calls), self.events, self.prices, force)
            self._ledger = (key, calls)
        return list(self._ledger[1])

    def latest_kickoff(self, crew: Any) -> str | None:
        """The id of the crew's latest kickoff no fixture run has claimed yet.

        The application may have kicked off the same object before, and those runs are not
        the one a fixture call just made.
        """
        ids = [e.event_id for e in self.events.ordered("crew_kickoff_started") if e.source_id == id(crew)]
        claimed = {r.kickoff_id for r in self.fixture_runs}
        return next((i for i in reversed(ids) if i not in claimed), None)

    def make_run(
        self, kickoff_id: str | None, output: Any, elapsed: float, error: BaseException | None
    ) -> GuardedRun:
        calls = [c for c in self.calls() if kickoff_id is not None and c.kickoff_id == kickoff_id]
        latencies = [c.recorded_latency_s for c in calls]
        waited, gave_up = self._faults_of(kickoff_id)
        floor = None
        if not self._any_replayed(kickoff_id):
            projected: float | None = elapsed  # live: the real thing
        elif None in latencies:
            projected = None
            if any(x is not None for x in latencies):  # some known: the run takes at least these
                floor = elapsed + sum(x or 0.0 for x in latencies) + waited
        else:
            projected = elapsed + sum(x or 0.0 for x in latencies) + waited
        scope = self.events.descendants(kickoff_id) if kickoff_id else []
        tools = [e for e in scope if e.type.startswith("tool_usage")]
        wire = self._wire()
        # The same exchanges, in the same order, as the run's `calls` (a crew's or an
        # Agent.kickoff()'s, as the ledger assigns them).
        every = list(wire.calls) if wire else []
        exchanges = [w for w in every if w.exchange.kind == "llm" and _kickoff_of(w) == kickoff_id]
        llm_ids = [w.scope_id("llm_call_started") for w in exchanges]
        tool_calls = build_tool_calls([e for e in scope if e.type == "llm_call_started"] + tools, llm_ids)
        roles = {e.agent_role for e in scope if e.agent_role}
        started = self.events.get(kickoff_id)
        step = self._flow_step(started)
        return GuardedRun(
            output=output,
            calls=calls,
            elapsed_s=elapsed,
            projected_s=projected,
            projected_floor_s=floor,
            kickoff_id=kickoff_id,
            tool_events=tools,
            tool_calls=tool_calls,
            delegations=delegations(tool_calls, roles),
            error=error,
            rootdir=self.rootdir,
            crew=started.crew_name if started and started.type == "crew_kickoff_started" else None,
            agent=started.agent_role if started and started.type == LITE_AGENT else None,
            flow_step=step,
            waited_s=waited,
            gave_up=gave_up,
        )

    def _faults_of(self, kickoff_id: str | None) -> tuple[float, list[str]]:
        """The run's virtual waits, and the faults no answer followed (the SDK gave up)."""
        wire = self._wire()
        if wire is None or kickoff_id is None:
            return 0.0, []
        waited = sum(w.seconds for w in wire.fault_log.waits if _in_kickoff(w.scope, kickoff_id))
        return waited, self.gave_up(kickoff_id)

    def gave_up(self, kickoff_id: str | None) -> list[str]:
        """The faults of the kickoff after which its request was never answered.

        Answered: by a retry in the same LLM call, or later by another model, anywhere in the
        test (the application fell back to it). CrewAI's own retry of the agent with the same
        model does not count: the rate limit reached the crew, as it would in production.
        """
        if kickoff_id is None:
            return []
        return self._unanswered(lambda scope: _in_kickoff(scope, kickoff_id))

    def gave_up_outside_runs(self) -> list[str]:
        """The faults after which a request made outside any crew or agent kickoff (a flow
        step's or the test's own ``LLM.call``) was never answered (as :meth:`gave_up`)."""
        return self._unanswered(lambda scope: not any(kind in _RUN_STARTS for _, kind in scope))

    def _unanswered(self, mine: Callable[[Scope], bool]) -> list[str]:
        wire = self._wire()
        if wire is None:
            return []
        answers = wire.llm_answers()
        same_call = {_call_of(w.scope) for w in answers}
        return [
            describe_fault(f, self.events)
            for f in wire.fault_log.faults
            if mine(f.scope)
            and _call_of(f.scope) not in same_call
            and not any(w.index >= f.position and _other_model(w.request_model, f.model) for w in answers)
        ]

    def _inside_crew(self, started: CrewEvent) -> bool:
        """An ``Agent.kickoff()`` made inside a crew's kickoff (a tool, a guardrail): its calls
        belong to the crew's run, so it is not a run of its own."""
        if started.type != LITE_AGENT:
            return False
        return self._ancestor(started.parent_id, "crew_kickoff_started") is not None

    def _flow_step(self, started: CrewEvent | None) -> str | None:
        """The flow method a kickoff ran in (its nearest ``method_execution_started`` parent)."""
        step = self._ancestor(started.parent_id, "method_execution_started") if started else None
        return step.method_name if step is not None else None

    def _ancestor(self, parent: str | None, kind: str) -> CrewEvent | None:
        """The nearest event of type ``kind`` up the parent chain (None when it ends or breaks)."""
        seen: set[str] = set()
        while parent is not None and parent not in seen:
            seen.add(parent)
            up = self.events.get(parent)
            if up is None:
                return None
            if up.type == kind:
                return up
            parent = up.parent_id
        return None

    def _any_replayed(self, kickoff_id: str | None) -> bool:
        wire = self._wire()
        if wire is None or kickoff_id is None:
            return False
        return any(w.replayed for w in wire.calls if any(s[0] == kickoff_id for s in w.scope))

    def fault_violations(self) -> list[Violation]:
        """Each run's requests the SDK gave up on after injected faults (``provider_fault``)."""
        from .rate_limits import fault_violations

        found: list[Violation] = []
        for run in self.all_runs():
            run.gave_up = self.gave_up(run.kickoff_id)
            found += fault_violations(run)
        return found + self.outside_fault_violations()

    def outside_fault_violations(self) -> list[Violation]:
        """Requests made outside any kickoff that the SDK gave up on after injected faults:
        an application that falls back to a canned answer passed with no call at $0."""
        from .rate_limits import given_up_violations

        who = "an LLM call made outside any crew (a flow step's or the test's own LLM.call)"
        return given_up_violations(self.gave_up_outside_runs(), [], who)

    def all_runs(self) -> list[GuardedRun]:
        """Fixture runs plus kickoffs the application made itself, in start order."""
        known = {r.kickoff_id for r in self.fixture_runs}
        runs = list(self.fixture_runs)
        starts = self.events.ordered("crew_kickoff_started", LITE_AGENT)
        ends: dict[str | None, Any] = {}
        for end_event in self.events.ordered(*KICKOFF_ENDS):
            ends.setdefault(end_event.started_id, end_event)
        for started in starts:
            if started.event_id in known or self._inside_crew(started):
                continue
            done = ends.get(started.event_id)
            end = done.timestamp if done is not None and done.timestamp else self._last_seen(started)
            elapsed = (end or 0.0) - (started.timestamp or 0.0)
            output = self._application_output(started, done)
            runs.append(self.make_run(started.event_id, output, max(elapsed, 0.0), None))
        # Positions, not emission_sequence: CrewAI restarts that at every top-level kickoff.
        order = {e.event_id: i for i, e in enumerate(starts)}
        return sorted(runs, key=lambda r: order.get(r.kickoff_id or "", 1 << 62))

    def _last_seen(self, started: CrewEvent) -> float | None:
        """Until when a kickoff with no end event ran: now if a thread still runs it (stopped at
        max_seconds, left behind: its time is not 0), else its start (ended by an exception
        CrewAI does not catch, which leaves its scope open: a later kickoff of the thread would
        count among its events)."""
        import threading
        import time

        from .unfinished_kickoffs import kickoff_of

        if any(id(kickoff_of(thread)) == started.source_id for thread in threading.enumerate()):
            return time.time()
        return started.timestamp

    def _application_output(self, started: CrewEvent, done: CrewEvent | None) -> Any:
        """What the application's kickoff returned to it, as the fixture would have it.

        CrewAI's completed event carries the final task's ``TaskOutput`` only (an
        ``Agent.kickoff()`` its raw text); the crew's ``CrewOutput`` is rebuilt from it and the
        outputs of the kickoff's own tasks, so runs read the same whoever kicked them off.
        """
        if done is None or done.output is None:
            return None
        if started.type == LITE_AGENT or type(done.output).__name__ == "CrewOutput":
            return done.output
        tasks = [
            e.output
            for e in self.events.descendants(started.event_id)
            if e.type == "task_completed" and e.output is not None
        ]
        final = done.output
        try:
            from crewai.crews.crew_output import CrewOutput

            return CrewOutput(
                raw=str(getattr(final, "raw", "") or ""),
                pydantic=getattr(final, "pydantic", None),
                json_dict=getattr(final, "json_dict", None),
                tasks_output=tasks or [final],
            )
        except Exception:  # a CrewAI without CrewOutput's fields: the task output is still right
            return final


_RUN_STARTS = frozenset({"crew_kickoff_started", LITE_AGENT})


def _call_of(scope: Scope) -> object:
    """What identifies one LLM call's attempts: CrewAI's LLM call scope, else the whole scope."""
    return scope_id(scope, "llm_call_started") or scope


def _in_kickoff(scope: Scope, kickoff_id: str) -> bool:
    """Whether ``scope`` is inside the run ``kickoff_id`` (a crew's or an agent's kickoff)."""
    return any(event_id == kickoff_id for event_id, _ in scope)


def _other_model(answered: str | None, faulted: str | None) -> bool:
    return answered is not None and faulted is not None and answered != faulted
