"""``crewguard.kickoff_flow``: a CrewAI Flow run inside the test's cassette and limits.

A flow is the unit the test kicks off: its crews, its ``Agent.kickoff()`` steps and its direct
``LLM.call()`` s are all parts of one :class:`FlowRun`. Each crew and agent run inside it is
gated like any other run (iterations, forced answers, ``output={task: schema}``); the flow's
totals (cost, tokens, projected time) and its return value are gated as a whole. The objects
the flow kicks off are claimed after each run, so a crew or LLM kept at module level (or as a
class attribute) is refused when ``repeat=N`` or another test runs it again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from . import deadline, flow_kickoffs, overrun
from . import events as crew_events
from .flow_result import FlowRun
from .limits import run_violations, total_violations
from .output_gates import flow_output_violation, unmatched_tasks
from .verdict import Gate, Violation
from .wire import HttpExchange

if TYPE_CHECKING:
    from .guard_session import GuardSession
    from .repeat import Repeats

# A function that builds the flow (called once per repeat), or the Flow class itself.
FlowFactory = Callable[[], Any] | type

_KICKOFFS = ("crew_kickoff_started", "lite_agent_execution_started")


def _is_flow(obj: Any) -> bool:
    return callable(getattr(obj, "kickoff", None)) and hasattr(obj, "state") and not hasattr(obj, "agents")


def build_flow(factory: Any) -> Any:
    """A fresh flow from ``factory`` (a function or the Flow class); a wrong type is refused."""
    fresh = isinstance(factory, type) or (callable(factory) and not _is_flow(factory))
    flow = factory() if fresh else factory
    if not _is_flow(flow):
        hint = " (for a crew use crewguard.kickoff)" if hasattr(flow, "agents") else ""
        raise TypeError(
            "crewguard.kickoff_flow() needs a function that returns a crewai Flow, or the Flow "
            f"class; {factory!r} gave {type(flow).__name__}{hint}"
        )
    return flow


class FlowRunner:
    """Runs flows for one test's :class:`~pytest_crewguard.guard_session.GuardSession`."""

    def __init__(self, guard: GuardSession) -> None:
        self.guard = guard

    def kickoff(self, factory: FlowFactory, inputs: dict[str, Any] | None) -> FlowRun:
        guard = self.guard
        with guard.fixture_kickoff(), guard.repeats() as repeats:
            numbers = range(1, guard.spec.repeat + 1)
            results = [self._kept(repeats, self._one_run(repeats, n, factory, inputs)) for n in numbers]
        guard.check_repeats(repeats)
        return results[0]

    async def kickoff_async(self, factory: FlowFactory, inputs: dict[str, Any] | None) -> FlowRun:
        guard = self.guard
        with guard.fixture_kickoff(), guard.repeats() as repeats:
            numbers = range(1, guard.spec.repeat + 1)
            results = [
                self._kept(repeats, await self._one_run_async(repeats, n, factory, inputs))
                for n in numbers
            ]
        guard.check_repeats(repeats)
        return results[0]

    # The flow is a local of these two, so it is gone when they return: the heap sample that
    # follows each run must not count this run's flow as retained.
    def _one_run(
        self, repeats: Repeats, number: int, factory: FlowFactory, inputs: dict[str, Any] | None
    ) -> FlowRun:
        with repeats.storage(number):
            flow = build_flow(factory)
            return self._guarded(flow, partial(flow.kickoff, inputs=inputs))

    async def _one_run_async(
        self, repeats: Repeats, number: int, factory: FlowFactory, inputs: dict[str, Any] | None
    ) -> FlowRun:
        with repeats.storage(number):
            flow = build_flow(factory)
            return await self._guarded_async(flow, partial(flow.kickoff_async, inputs=inputs))

    def _kept(self, repeats: Repeats, result: FlowRun) -> FlowRun:
        """``result`` after :class:`~pytest_crewguard.repeat.Repeats` took what it sent and left."""
        repeats.finished(None, self._exchanges(result.flow_id))
        return result

    # -- one flow run ------------------------------------------------------------------------

    def _guarded(self, flow: Any, call: Callable[[], Any]) -> FlowRun:
        kicked, started = flow_kickoffs.start(), time.perf_counter()
        try:
            output = self._with_deadline(flow, call, started)
        except Exception as err:
            return self._finish(flow, kicked, None, started, err)
        return self._finish(flow, kicked, output, started, None)

    async def _guarded_async(self, flow: Any, make: Callable[[], Awaitable[Any]]) -> FlowRun:
        kicked, started = flow_kickoffs.start(), time.perf_counter()
        try:
            output = await self._with_deadline_async(flow, make, started)
        except Exception as err:
            return self._finish(flow, kicked, None, started, err)
        return self._finish(flow, kicked, output, started, None)

    def _with_deadline(self, flow: Any, call: Callable[[], Any], started: float) -> Any:
        max_seconds = self.guard.spec.max_seconds
        if max_seconds is None:
            return call()
        outcome = deadline.call_with_deadline(call, max_seconds, f"crewguard-flow[{self.guard.nodeid}]")
        return self._settled(flow, started, outcome, outcome.thread)

    async def _with_deadline_async(
        self, flow: Any, make: Callable[[], Awaitable[Any]], started: float
    ) -> Any:
        max_seconds = self.guard.spec.max_seconds
        if max_seconds is None:
            return await make()
        outcome = await deadline.await_with_deadline(
            make,  # type: ignore[arg-type]
            max_seconds,
            f"crewguard-flow-async[{self.guard.nodeid}]",
        )
        return self._settled(flow, started, outcome, None)

    def _settled(
        self, flow: Any, started: float, outcome: deadline.Outcome, thread: threading.Thread | None
    ) -> Any:
        """The kickoff's output; its error raised; past max_seconds, the test failed now."""
        if not outcome.finished:
            self._fail_timeout(flow, started, thread)
        if outcome.error is not None:
            raise outcome.error
        return outcome.output

    def _finish(
        self,
        flow: Any,
        kicked: flow_kickoffs.Kicked,
        output: Any,
        started: float,
        error: BaseException | None,
    ) -> FlowRun:
        guard = self.guard
        elapsed = time.perf_counter() - started
        crew_events.flush()
        flow_kickoffs.stop()
        result = self._assemble(flow, output, elapsed, error)
        guard.fail_if_blind()  # a cassette miss first: it explains the error that follows
        self._claim(kicked)
        if error is not None:
            raise error
        found: list[Violation] = []
        for run in result.runs:
            found += run_violations(guard.spec, run)
        bad_output = flow_output_violation(guard.spec.output, output, guard.settings.rootdir)
        if bad_output is not None:
            found.append(bad_output)
        found += self._unmatched(result)
        found += self._projected(result)
        found += total_violations(guard.spec, guard.assembly.calls())
        found = guard.verdict.new(found)
        if found:
            raise guard.verdict.failure(found)
        return result

    def _unmatched(self, result: FlowRun) -> list[Violation]:
        """``output={task: schema}`` naming a task the flow never ran: a typo must not pass."""
        missing = unmatched_tasks(self.guard.spec.output, result.runs)
        if not missing:
            return []
        ran = sorted(
            {
                (r.crew or "-", str(getattr(o, "name", "") or "").strip())
                for r in result.runs
                for o in r.task_outputs
            }
        )
        known = ", ".join(f"{task!r} (crew {crew!r})" for crew, task in ran) or "(none)"
        message = (
            f"output={{...}} names task{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing))} but the flow {result.name} ran no such task; "
            f"its tasks: {known}"
        )
        return [Violation(Gate.OUTPUT, message, {"missing": missing})]

    def _claim(self, kicked: flow_kickoffs.Kicked) -> None:
        """Claim what the flow kicked off: refused if an earlier run or test used it."""
        with kicked.lock:
            objects = list(kicked.objects)
        kicked.objects.clear()
        for obj in objects:
            self.guard.claim(flow_kickoffs.parts(obj))

    def _flow_id(self, flow: Any) -> str | None:
        ids = [e.event_id for e in self.guard.events.ordered("flow_started") if e.source_id == id(flow)]
        return ids[-1] if ids else None

    def _exchanges(self, flow_id: str | None) -> list[HttpExchange]:
        wire = self.guard.wire
        if wire is None or flow_id is None:
            return []
        return [w for w in wire.calls if any(event_id == flow_id for event_id, _ in w.scope)]

    def _assemble(self, flow: Any, output: Any, elapsed: float, error: BaseException | None) -> FlowRun:
        guard = self.guard
        flow_id = self._flow_id(flow)
        if flow_id is not None:
            guard.assembly.fixture_flows.add(flow_id)
        inside = {e.event_id for e in guard.events.descendants(flow_id)} if flow_id else set()
        mine = {w.index for w in self._exchanges(flow_id)}
        every = guard.calls()
        # The ledger has one call per LLM exchange of the wire, in the wire's order.
        llm = [w for w in (guard.wire.calls if guard.wire else []) if w.exchange.kind == "llm"]
        calls = [c for w, c in zip(llm, every, strict=False) if w.index in mine]
        runs = [r for r in guard.runs() if r.kickoff_id in inside]
        starts = {e.event_id: e.timestamp or 0.0 for e in guard.events.ordered(*_KICKOFFS)}
        runs.sort(key=lambda r: starts.get(r.kickoff_id or "", 0.0))
        exchanges = self._exchanges(flow_id)
        if not any(w.replayed for w in exchanges):
            projected: float | None = elapsed
        elif any(w.recorded_latency_s is None for w in exchanges if w.exchange.kind == "llm"):
            projected = None
        else:
            projected = elapsed + sum(
                w.recorded_latency_s or 0.0 for w in exchanges if w.exchange.kind == "llm"
            )
        return FlowRun(
            output=output,
            state=getattr(flow, "state", None),
            runs=runs,
            calls=calls,
            elapsed_s=elapsed,
            projected_s=projected,
            flow_id=flow_id,
            error=error,
            name=type(flow).__name__,
        )

    def _projected(self, result: FlowRun) -> list[Violation]:
        limit = self.guard.spec.max_seconds
        if limit is None or result.projected_s is None or result.projected_s <= limit:
            return []
        recorded = result.projected_s - result.elapsed_s
        return [
            Violation(
                Gate.MAX_SECONDS,
                f"flow {result.name}: projected time {result.projected_s:.2f} s is over "
                f"max_seconds={limit:g} ({recorded:.2f} s of recorded provider latency over "
                f"{result.llm_calls} calls + {result.elapsed_s:.2f} s local); against the live "
                "provider this flow would take that long",
            )
        ]

    def _fail_timeout(self, flow: Any, started: float, thread: threading.Thread | None) -> None:
        """Fail the test now: what the flow did so far and where it is stuck."""
        guard = self.guard
        over = overrun.stop_waiting(guard, flow, started, thread)
        result = self._assemble(flow, None, over.waited, over.error())
        for run in result.runs:
            guard.checked.add(id(run))
        done = "\n".join(f"    {i + 1}. {c.model} {c.where}" for i, c in enumerate(result.calls))
        overrun.fail(guard, flow, over, f"flow {result.name}", "flow", done)
