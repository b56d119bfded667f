"""``CrewGuard``: the ``crewguard`` fixture. Runs crews inside the test's cassette and limits."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from . import deadline, overrun
from . import events as crew_events
from .ledger import LLMCall, total_cost, total_tokens
from .run import GuardedRun
from .tool_calls import ToolInvocation
from .verdict import Gate, Violation

if TYPE_CHECKING:
    from crewai import Crew

    from .flow_result import FlowRun
    from .flow_run import FlowFactory
    from .guard_session import GuardSession
    from .repeat import Repeats

# A function that builds the crew (called once per repeat), or the crew itself.
CrewFactory = Union[Callable[[], "Crew"], "Crew"]


def _kept(repeats: Repeats, run: GuardedRun) -> GuardedRun:
    """``run`` after :class:`~pytest_crewguard.repeat.Repeats` took what it sent and left."""
    repeats.finished(run)
    return run


def _is_crew(obj: Any) -> bool:
    return hasattr(obj, "kickoff") and hasattr(obj, "agents")


def _is_stream(output: Any) -> bool:
    """A ``Crew(stream=True)`` kickoff's ``CrewStreamingOutput`` (crewai is loaded by then)."""
    streaming = sys.modules.get("crewai.types.streaming")
    return streaming is not None and isinstance(output, streaming.CrewStreamingOutput)


def _drained(kickoff: Callable[[], Any]) -> Any:
    """Kick off and, for a streaming crew, read the stream to its end.

    A streaming kickoff returns before the crew has run: the crew only runs while its chunks
    are read, so they are read here, inside the guard's limits. The chunks stay on the stream.
    """
    output = kickoff()
    if _is_stream(output):
        for _chunk in output:
            pass
    return output


async def _drained_async(kickoff: Callable[[], Awaitable[Any]]) -> Any:
    """:func:`_drained` for ``kickoff_async``, whose stream is read with ``async for``."""
    output = await kickoff()
    if _is_stream(output):
        async for _chunk in output:
            pass
    return output


class CrewGuard:
    """The ``crewguard`` fixture: kicks off crews under the test's marker limits.

    Every crew kickoff during the test is guarded, in any thread, whether it goes through
    :meth:`kickoff` or the application's own code; :attr:`runs` lists them in start order.
    """

    def __init__(self, guard_session: GuardSession) -> None:
        self._guard_session = guard_session

    @property
    def storage_dir(self) -> Path:
        """The test's own CrewAI storage directory (memory, knowledge, flow state)."""
        return self._guard_session.storage_dir

    @property
    def runs(self) -> list[GuardedRun]:
        """Every kickoff of the test so far, in the order they started."""
        return self._guard_session.runs()

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call of the test so far, in or outside a crew."""
        return self._guard_session.calls()

    @property
    def tool_calls(self) -> list[ToolInvocation]:
        """Every tool call of the test so far, run after run (application kickoffs included)."""
        return [call for run in self.runs for call in run.tool_calls]

    @property
    def cost(self) -> float:
        """USD of the test's calls so far (the known part; gates refuse unknown usage)."""
        return total_cost(self.calls)

    @property
    def tokens(self) -> int:
        """Tokens of the test's calls so far (calls without usage are listed by the gates, not 0)."""
        return total_tokens(self.calls)

    def kickoff(self, factory: CrewFactory, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """Build a crew with ``factory`` and kick it off under the marker's limits.

        With ``repeat=N`` the factory runs N times, each run in CrewAI storage of its own, and
        the runs are checked for isolation; the first run is returned and :attr:`runs` holds
        all of them.
        """
        guard = self._guard_session
        with guard.fixture_kickoff(), guard.repeats() as repeats:
            numbers = range(1, guard.spec.repeat + 1)
            runs = [_kept(repeats, self._one_run(repeats, n, factory, inputs)) for n in numbers]
        guard.check_repeats(repeats)
        return runs[0]

    async def kickoff_async(self, factory: CrewFactory, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """The same as :meth:`kickoff`, through ``Crew.kickoff_async``."""
        guard = self._guard_session
        with guard.fixture_kickoff(), guard.repeats() as repeats:
            numbers = range(1, guard.spec.repeat + 1)
            runs = [
                _kept(repeats, await self._one_run_async(repeats, n, factory, inputs)) for n in numbers
            ]
        guard.check_repeats(repeats)
        return runs[0]

    def kickoff_flow(self, factory: FlowFactory, inputs: dict[str, Any] | None = None) -> FlowRun:
        """Build a flow with ``factory`` (or from the Flow class) and kick it off under the
        marker's limits, with ``repeat``, reuse checks and the hard ``max_seconds``.

        Returns a :class:`~pytest_crewguard.flow_run.FlowRun`: the flow's return value as
        ``output``, its final ``state``, the crew and ``Agent.kickoff()`` runs inside it, and
        the calls, cost, tokens and time of the whole flow, direct ``LLM.call()`` s included.
        """
        from .flow_run import FlowRunner

        return FlowRunner(self._guard_session).kickoff(factory, inputs)

    async def kickoff_flow_async(self, factory: FlowFactory, inputs: dict[str, Any] | None = None) -> FlowRun:
        """The same as :meth:`kickoff_flow`, through ``Flow.kickoff_async``."""
        from .flow_run import FlowRunner

        return await FlowRunner(self._guard_session).kickoff_async(factory, inputs)

    # -- running ---------------------------------------------------------------------------

    def _build(self, factory: CrewFactory) -> Any:
        if not _is_crew(factory) and not callable(factory):
            raise TypeError(
                f"crewguard.kickoff() needs a function that returns a crewai Crew (or a Crew); it got "
                f"{factory!r}, of type {type(factory).__name__}, e.g. crewguard.kickoff(make_crew)"
            )
        crew = factory if _is_crew(factory) else factory()  # type: ignore[operator]
        if not _is_crew(crew):
            # A flow is built the same way but run by kickoff_flow, which knows flows.
            hint = "; for a Flow use crewguard.kickoff_flow()" if hasattr(crew, "state") else ""
            raise TypeError(
                f"crewguard.kickoff() needs a function that returns a crewai Crew (or a Crew); "
                f"{factory!r} gave {type(crew).__name__}{hint}"
            )
        self._guard_session.claim(crew)
        return crew

    # The crew is a local of these two, so it is gone when they return: the heap sample that
    # follows each run must not count this run's crew as retained.
    def _one_run(
        self, repeats: Repeats, number: int, factory: CrewFactory, inputs: dict[str, Any] | None
    ) -> GuardedRun:
        with repeats.storage(number):
            crew = self._build(factory)
            return self._guarded(crew, partial(_drained, partial(crew.kickoff, inputs=inputs)))

    async def _one_run_async(
        self, repeats: Repeats, number: int, factory: CrewFactory, inputs: dict[str, Any] | None
    ) -> GuardedRun:
        with repeats.storage(number):
            crew = self._build(factory)
            return await self._guarded_async(crew, inputs)

    async def _guarded_async(self, crew: Any, inputs: dict[str, Any] | None) -> GuardedRun:
        max_seconds = self._guard_session.spec.max_seconds
        started = time.perf_counter()
        error: BaseException | None = None
        output = None
        timed_out = False
        try:
            kickoff = partial(_drained_async, partial(crew.kickoff_async, inputs=inputs))
            if max_seconds is None:
                output = await kickoff()
            else:
                outcome = await deadline.await_with_deadline(
                    kickoff, max_seconds, f"crewguard-kickoff-async[{self._guard_session.nodeid}]"
                )
                timed_out = not outcome.finished
                if outcome.error is not None:
                    raise outcome.error
                output = outcome.output
        except BaseException as err:
            error = err
        if timed_out:
            # The kickoff's own event loop thread only waits for its worker: not worth showing.
            self._fail_timeout(crew, started, None)
        return self._finish_run(crew, output, started, error)

    def _guarded(self, crew: Any, call: Callable[[], Any]) -> GuardedRun:
        started = time.perf_counter()
        error: BaseException | None = None
        output = None
        try:
            if self._guard_session.spec.max_seconds is None:
                output = call()
            else:
                output = self._with_deadline(crew, call, started)
        except Exception as err:
            error = err
        return self._finish_run(crew, output, started, error)

    def _with_deadline(self, crew: Any, call: Callable[[], Any], started: float) -> Any:
        max_seconds = self._guard_session.spec.max_seconds
        assert max_seconds is not None
        name = f"crewguard-kickoff[{self._guard_session.nodeid}]"
        outcome = deadline.call_with_deadline(call, max_seconds, name)
        if not outcome.finished:
            self._fail_timeout(crew, started, outcome.thread)
        if outcome.error is not None:
            raise outcome.error
        return outcome.output

    def _fail_timeout(self, crew: Any, started: float, thread: threading.Thread | None) -> None:
        """Fail the test now: where the crew is stuck, what it did so far; then free its threads."""
        guard = self._guard_session
        over = overrun.stop_waiting(guard, crew, started, thread)
        kickoff_id = guard.assembly.latest_kickoff(crew)
        # The timed-out run counts like any other: its finished calls, cost and time are reported.
        run = guard.assembly.make_run(kickoff_id, None, over.waited, over.error())
        guard.assembly.fixture_runs.append(run)
        guard.checked.add(id(run))
        done = "\n".join(f"    {i + 1}. {c.describe()}" for i, c in enumerate(run.calls))
        overrun.fail(guard, crew, over, "crew", "crew", done)

    def _finish_run(self, crew: Any, output: Any, started: float, error: BaseException | None) -> GuardedRun:
        guard = self._guard_session
        elapsed = time.perf_counter() - started
        crew_events.flush()
        kickoff_id = guard.assembly.latest_kickoff(crew)
        stream = output if _is_stream(output) else None
        run = guard.assembly.make_run(kickoff_id, _final_output(stream) if stream else output, elapsed, error)
        run.stream = stream
        guard.assembly.fixture_runs.append(run)
        guard.fail_if_blind()
        if error is not None:
            from .output_schema import crewai_output_error

            problem = crewai_output_error(error, run)
            if problem:
                message = f"crewguard: {problem}"
                raise guard.verdict.failure([Violation(Gate.OUTPUT, message)], message)
            raise error
        guard.check(run)
        return run


def _final_output(stream: Any) -> Any:
    """The ``CrewOutput`` of a stream read to its end (``None`` if the crew gave none)."""
    try:
        return stream.result
    except Exception:  # failed or empty: the run's error says why
        return None
