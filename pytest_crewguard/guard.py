"""``CrewGuard``: the ``crewguard`` fixture. Runs crews inside the test's cassette and limits."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from . import deadline, interception
from . import events as crew_events
from .cassette_location import cassette_path
from .cassette_writers import writing_as
from .deadline import CrewTimeout
from .environment import placeholder_keys, storage_dir_for
from .errors import CrewguardError
from .events import EventLog
from .isolation import ReusedObjectError, UsedObjects
from .ledger import LLMCall, build_calls, forced_final_answer_texts, total_cost, total_tokens
from .limits import run_violations, total_violations
from .marker import GuardSpec
from .match_config import MatchConfig
from .network import network_blocked
from .options import Settings
from .repeat import Repeats
from .run import GuardedRun
from .session import CrewguardSession, GuardedTest
from .storage import storage_at
from .tls import shared_tls_context
from .wire import WireLog

Factory = Callable[[], Any]


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

    def __init__(
        self,
        *,
        spec: GuardSpec,
        nodeid: str,
        settings: Settings,
        session: CrewguardSession,
        used: UsedObjects,
        storage_root: Path,
        match_config: MatchConfig | None = None,
    ) -> None:
        self.spec = spec
        self.match_config = match_config or MatchConfig()
        self.nodeid = nodeid
        self.settings = settings
        self.session = session
        self.record_mode = settings.record_mode_for(spec.record_mode)
        self.cassette_path = cassette_path(settings.cassette_dir, nodeid, spec.cassette)
        self._used = used
        self._storage_root = storage_root
        self._fixture_runs: list[GuardedRun] = []
        self._checked: set[int] = set()
        self._prompt_files: set[str] = set()
        self._stack = ExitStack()
        self.events = EventLog()
        self.wire: WireLog | None = None
        self._ledger: tuple[tuple[int, int, tuple[str, ...]], list[LLMCall]] | None = None
        self.storage_dir: Path = storage_root  # the test's own directory once started
        self.repeat_summaries: list[Callable[[], dict[str, Any]]] = []  # per kickoff call
        self.failed_gates: list[str] = []
        self.outcome = "passed"
        self._patches: interception.Snapshot = {}

    # -- lifecycle (driven by the plugin) --------------------------------------------------

    def start(self) -> None:
        """Enter the test's storage, event log and cassette; undone by :meth:`close`."""
        try:
            self._enter()
        except BaseException:
            self._stack.close()  # a half-started guard must not leave patches behind
            raise

    def _enter(self) -> None:
        from . import vcr_setup

        self.storage_dir = self._stack.enter_context(
            storage_at(storage_dir_for(self._storage_root, self.nodeid))
        )
        if "crewai" in sys.modules or _crewai_available():
            # Attached at every test, not once per process: a project's fixture may have
            # cleared CrewAI's event bus after the previous test.
            crew_events.activate(self.events)
            crew_events.reset_scope()
            self._stack.callback(crew_events.activate, None)
        exists = self.cassette_path.exists()
        # Tells the cassette writer which test writes, so shared cassettes merge or conflict clearly.
        writing_as(self.cassette_path, self.nodeid, self.record_mode, self.session)
        cassette = self._stack.enter_context(
            vcr_setup.cassette(
                self.cassette_path,
                self.record_mode,
                self.match_config,
                skip_write=lambda: bool(self.wire and self.wire.error_answers()),
            )
        )
        self.wire = WireLog(
            cassette,
            nodeid=self.nodeid,
            record_mode=self.record_mode,
            cassette_path=self._display(self.cassette_path),
            cassette_exists=exists,
            match_config=self.match_config,
            keep_errors=self.spec.record_errors,
        )
        cassette.wire = self.wire
        self._patches = interception.snapshot()
        # `none`, and `once` with an existing cassette: nothing may reach the network.
        if cassette.write_protected:
            self._stack.enter_context(network_blocked(self.settings.allow_hosts + self.spec.allow_hosts))
            self._stack.enter_context(placeholder_keys())
            self._stack.enter_context(shared_tls_context())

    def close(self) -> str | None:
        """Leave the cassette (writing it when recording) and restore the environment.

        Returns the problem, if writing the cassette was refused or failed.
        """
        try:
            self._stack.close()
        except CrewguardError as err:
            return str(err).replace(str(self.cassette_path), self._display(self.cassette_path))
        return None

    def _display(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.settings.rootdir))
        except ValueError:
            return str(path)

    # -- public API ------------------------------------------------------------------------

    @property
    def runs(self) -> list[GuardedRun]:
        """Every kickoff of the test so far, in the order they started."""
        crew_events.flush()
        return self._all_runs()

    @property
    def calls(self) -> list[LLMCall]:
        """Every LLM call of the test so far, in or outside a crew."""
        crew_events.flush()
        return self._calls()

    @property
    def cost(self) -> float:
        return total_cost(self.calls)

    @property
    def tokens(self) -> int:
        return total_tokens(self.calls)  # calls without usage are listed by the gates, not 0

    def kickoff(self, factory: Factory | Any, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """Build a crew with ``factory`` and kick it off under the marker's limits.

        With ``repeat=N`` the factory runs N times, each run in CrewAI storage of its own, and
        the runs are checked for isolation; the first run is returned and :attr:`runs` holds
        all of them.
        """
        runs: list[GuardedRun] = []
        with self._repeats() as repeats:
            for number in range(1, self.spec.repeat + 1):
                with repeats.storage(number):
                    crew = self._build(factory)
                    run = self._guarded(crew, partial(_drained, partial(crew.kickoff, inputs=inputs)))
                del crew  # the heap sample must not count this run's crew as retained
                repeats.finished(run)
                runs.append(run)
        self._check_repeats(repeats)
        return runs[0]

    async def kickoff_async(self, factory: Factory | Any, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """The same as :meth:`kickoff`, through ``Crew.kickoff_async``."""
        runs: list[GuardedRun] = []
        with self._repeats() as repeats:
            for number in range(1, self.spec.repeat + 1):
                with repeats.storage(number):
                    crew = self._build(factory)
                    run = await self._guarded_async(crew, inputs)
                del crew
                repeats.finished(run)
                runs.append(run)
        self._check_repeats(repeats)
        return runs[0]

    async def _guarded_async(self, crew: Any, inputs: dict[str, Any] | None) -> GuardedRun:
        started = time.perf_counter()
        error: BaseException | None = None
        output = None
        timed_out = False
        try:
            kickoff = partial(_drained_async, partial(crew.kickoff_async, inputs=inputs))
            if self.spec.max_seconds is None:
                output = await kickoff()
            else:
                outcome = await deadline.await_with_deadline(
                    kickoff,
                    self.spec.max_seconds,
                    f"crewguard-kickoff-async[{self.nodeid}]",
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

    def _repeats(self) -> Repeats:
        repeats = Repeats(self.spec, self.storage_dir, self.wire, self.events)
        self.repeat_summaries.append(repeats.summary)
        return repeats

    def _check_repeats(self, repeats: Repeats) -> None:
        found = repeats.problems()
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            pytest.fail("crewguard: " + "\n".join(message for _, message in found), pytrace=False)

    # -- running ---------------------------------------------------------------------------

    def _build(self, factory: Factory | Any) -> Any:
        crew = factory if _is_crew(factory) else factory()
        if not _is_crew(crew):
            raise TypeError(
                f"crewguard.kickoff() needs a function that returns a crewai Crew (or a Crew); "
                f"{factory!r} gave {type(crew).__name__}"
            )
        try:
            self._used.claim(crew, self.nodeid)
            refused = None
        except ReusedObjectError as err:
            refused = str(err)
        if refused is not None:  # failed outside the except block: no chained traceback
            self.failed_gates.append("reused_object")
            pytest.fail(refused, pytrace=False)
        prompt_file = getattr(crew, "prompt_file", None)
        if prompt_file:
            self._prompt_files.add(str(prompt_file))
        return crew

    def _guarded(self, crew: Any, call: Callable[[], Any]) -> GuardedRun:
        started = time.perf_counter()
        error: BaseException | None = None
        output = None
        try:
            if self.spec.max_seconds is None:
                output = call()
            else:
                output = self._with_deadline(crew, call, started)
        except Exception as err:
            error = err
        return self._finish_run(crew, output, started, error)

    def _with_deadline(self, crew: Any, call: Callable[[], Any], started: float) -> Any:
        assert self.spec.max_seconds is not None
        name = f"crewguard-kickoff[{self.nodeid}]"
        outcome = deadline.call_with_deadline(call, self.spec.max_seconds, name)
        if not outcome.finished:
            self._fail_timeout(crew, started, outcome.thread)
        if outcome.error is not None:
            raise outcome.error
        return outcome.output

    def _fail_timeout(self, crew: Any, started: float, thread: threading.Thread | None) -> None:
        """Fail the test now: where the crew is stuck, what it did so far; then free its threads."""
        waited = time.perf_counter() - started
        stuck = deadline.stuck_threads(crew, thread)
        stacks = deadline.describe(stuck, thread)
        crew_events.flush(timeout=1.0)
        ids = self._kickoff_ids(crew)
        # The kickoff this call just made is the crew's latest one: the application may have
        # kicked off the same object before, and those runs are not this one.
        claimed = {r.kickoff_id for r in self._fixture_runs}
        kickoff_id = next((i for i in reversed(ids) if i not in claimed), None)
        # The timed-out run counts like any other: its finished calls, cost and time are reported.
        run = self._make_run(kickoff_id, None, waited, CrewTimeout(f"max_seconds={self.spec.max_seconds:g}"))
        self._fixture_runs.append(run)
        self._checked.add(id(run))
        done = (
            "\n".join(
                f"    {i + 1}. {c.describe()}"
                for i, c in enumerate(run.calls)
            )
            or "    (none finished)"
        )
        deadline.abandon(crew, stuck, self.nodeid)
        self.failed_gates.append("max_seconds")
        message = (
            f"crewguard: the crew ran past max_seconds={self.spec.max_seconds:g} "
            f"(stopped waiting after {waited:.2f} s); the test fails now instead of hanging.\n"
            f"  LLM calls finished so far:\n{done}\n"
            "  Where the crew was:\n" + stacks
        )
        # Raised from None: an exception being handled by the caller is not part of this failure.
        raise pytest.fail.Exception(message, pytrace=False) from None

    def _finish_run(self, crew: Any, output: Any, started: float, error: BaseException | None) -> GuardedRun:
        elapsed = time.perf_counter() - started
        crew_events.flush()
        ids = self._kickoff_ids(crew)
        # The kickoff this call just made is the crew's latest one: the application may have
        # kicked off the same object before, and those runs are not this one.
        claimed = {r.kickoff_id for r in self._fixture_runs}
        kickoff_id = next((i for i in reversed(ids) if i not in claimed), None)
        stream = output if _is_stream(output) else None
        run = self._make_run(kickoff_id, _final_output(stream) if stream else output, elapsed, error)
        run.stream = stream
        self._fixture_runs.append(run)
        self._fail_if_blind()
        if error is not None:
            from .output_schema import crewai_output_error

            problem = crewai_output_error(error, run)
            if problem:
                self.failed_gates.append("output")
                pytest.fail(f"crewguard: {problem}", pytrace=False)
            raise error
        self._check(run)
        return run

    def _kickoff_ids(self, crew: Any) -> list[str]:
        return [e.event_id for e in self.events.ordered("crew_kickoff_started") if e.source_id == id(crew)]

    def _make_run(
        self, kickoff_id: str | None, output: Any, elapsed: float, error: BaseException | None
    ) -> GuardedRun:
        calls = [c for c in self._calls() if kickoff_id is not None and c.kickoff_id == kickoff_id]
        latencies = [c.recorded_latency_s for c in calls]
        replayed = self._any_replayed(kickoff_id)
        if not replayed:
            projected: float | None = elapsed  # live: the real thing
        elif None in latencies:
            projected = None
        else:
            projected = elapsed + sum(x or 0.0 for x in latencies)
        tools = self.events.descendants(kickoff_id) if kickoff_id else []
        return GuardedRun(
            output=output,
            calls=calls,
            elapsed_s=elapsed,
            projected_s=projected,
            kickoff_id=kickoff_id,
            tool_events=[e for e in tools if e.type.startswith("tool_usage")],
            error=error,
            rootdir=self.settings.rootdir,
        )

    def _any_replayed(self, kickoff_id: str | None) -> bool:
        return self.wire is not None and any(w.replayed for w in self.wire.calls_of(kickoff_id))

    def _calls(self) -> list[LLMCall]:
        if self.wire is None:
            return []
        force = forced_final_answer_texts(self._prompt_files) if "crewai" in sys.modules else []
        # The ledger only changes when an exchange or an event arrives; it is read after every
        # kickoff and by every property, so it is built once per change.
        key = (len(self.wire.calls), len(self.events.records), tuple(force))
        if self._ledger is None or self._ledger[0] != key:
            calls = build_calls(list(self.wire.calls), self.events, self.session.prices, force)
            self._ledger = (key, calls)
        return list(self._ledger[1])

    def _all_runs(self) -> list[GuardedRun]:
        """Fixture runs plus kickoffs the application made itself, in start order."""
        known = {r.kickoff_id for r in self._fixture_runs}
        runs = list(self._fixture_runs)
        starts = self.events.ordered("crew_kickoff_started")
        ends: dict[str | None, Any] = {}
        for end_event in self.events.ordered("crew_kickoff_completed", "crew_kickoff_failed"):
            ends.setdefault(end_event.started_id, end_event)
        for started in starts:
            if started.event_id in known:
                continue
            done = ends.get(started.event_id)
            end = done.timestamp if done is not None and done.timestamp else started.timestamp
            elapsed = (end or 0.0) - (started.timestamp or 0.0)
            output = done.output if done is not None else None
            runs.append(self._make_run(started.event_id, output, max(elapsed, 0.0), None))
        # Positions, not emission_sequence: CrewAI restarts that at every top-level kickoff.
        order = {e.event_id: i for i, e in enumerate(starts)}
        return sorted(runs, key=lambda r: order.get(r.kickoff_id or "", 1 << 62))

    # -- verdicts --------------------------------------------------------------------------

    def _check(self, run: GuardedRun) -> None:
        self._checked.add(id(run))
        found = run_violations(self.spec, run) + total_violations(self.spec, self._calls())
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            pytest.fail("crewguard: " + "\n".join(message for _, message in found), pytrace=False)

    def blind_spots(self) -> list[tuple[str, str]]:
        """What crewguard could not see or answer, as ``(gate, message)``: cassette misses,
        traffic another layer answered, LLM calls without CrewAI events, error answers
        refused while recording. Each is a failure, never a silent pass."""
        found: list[tuple[str, str]] = []
        if self.wire is None:
            return found
        if self.wire.misses:
            found.append(("cassette_miss", self.wire.misses[0]))
        other = interception.taken_over(self._patches) if self._patches else None
        if other is not None:
            found.append(("traffic_not_seen", _taken_over_message(other, self.nodeid)))
        unscoped = crew_events.calls_without_events(self.wire.calls, self.events)
        if unscoped:
            found.append(("events_missing", _events_missing_message(unscoped)))
        for problem in self.wire.error_answers():
            found.append(("provider_error", problem))
        return found

    def notes(self) -> list[str]:
        """What this test's numbers rest on that a reader should know (shown under the table)."""
        found = []
        if not self.match_config.checks_body:
            found.append(
                f"replayed with match_on={list(self.match_config.match_on)}: their request bodies were "
                "not checked against the recording (a changed prompt is not a miss)"
            )
        if self.wire is not None and self.wire.unrecorded_preflights:
            found.append(
                "sent token-count preflights their cassettes do not hold: answered as unavailable, "
                "so CrewAI estimated the counts itself (record again to replay the real ones)"
            )
        return found

    def _fail_if_blind(self) -> None:
        found = [f for f in self.blind_spots() if f[0] not in self.failed_gates]
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            # The first problem alone: a miss explains the errors that follow it.
            raise pytest.fail.Exception(found[0][1], pytrace=False) from None

    def finish_call(self) -> None:
        """After the test body: check every run the test did not check yet, and the totals."""
        crew_events.flush()
        self._fail_if_blind()
        found: list[tuple[str, str]] = []
        for run in self._all_runs():
            if id(run) not in self._checked:
                found += run_violations(self.spec, run)
        found += total_violations(self.spec, self._calls())
        found = [f for f in found if f[0] not in self.failed_gates]
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            pytest.fail("crewguard: " + "\n".join(message for _, message in found), pytrace=False)

    def result(self) -> GuardedTest:
        """This test's numbers for the end-of-run table."""
        crew_events.flush()
        record = GuardedTest.build(self.nodeid, self._calls(), self._all_runs())
        record.failed_gates = list(self.failed_gates)
        record.outcome = self.outcome
        return record


def _taken_over_message(other: str, nodeid: str) -> str:
    return (
        f"crewguard: the HTTP traffic of {nodeid} was answered by {other}, not by crewguard's "
        "cassette, so crewguard saw none of its LLM calls and could not count, price or gate them.\n"
        "  crewguard must be the innermost recorder: remove the other cassette from this test "
        "(@pytest.mark.vcr, vcr.use_cassette), or open it before the crewguard fixture starts."
    )


def _events_missing_message(calls: int) -> str:
    return (
        f"crewguard: {calls} LLM call(s) of this test were made inside a CrewAI kickoff whose events "
        "never reached crewguard, so it cannot tell which agent and task made them, nor check "
        "max_iterations or max_iter.\n"
        "  Something removed crewguard's handlers from crewai_event_bus during the test (for example "
        "a fixture that clears the bus's handlers, or a kickoff inside crewai_event_bus.scoped_handlers()). "
        "Clear the bus before the test starts, not while it runs."
    )


def _final_output(stream: Any) -> Any:
    """The ``CrewOutput`` of a stream read to its end (``None`` if the crew gave none)."""
    try:
        return stream.result
    except Exception:  # failed or empty: the run's error says why
        return None


def _crewai_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("crewai") is not None
