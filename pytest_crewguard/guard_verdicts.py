"""The checks a guarded test runs: after each kickoff, when the body fails, and at its end.

Part of :class:`~pytest_crewguard.guard_session.GuardSession`; kept apart from the cassette and
environment it opens and closes, as what it decides is the test's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as crew_events
from . import interception
from .blind_spots import blind_spots
from .events import EventLog
from .isolation import ReusedObjectError, UsedObjects
from .limits import run_violations, tool_violations, total_violations
from .marker import GuardSpec
from .output_gates import application_flow_violations, end_of_test_violations
from .repeat import Repeats
from .run import GuardedRun
from .run_assembly import RunAssembly
from .settings import Settings
from .unused_arguments import unused_arguments
from .verdict import Gate, GateFailure, Verdict, Violation
from .wire import WireLog

if TYPE_CHECKING:
    from .unfinished_kickoffs import Threads


class GuardVerdicts:
    """The verdict half of a guard: each check raises a :class:`GateFailure` naming the gate."""

    spec: GuardSpec
    nodeid: str
    settings: Settings
    used: UsedObjects
    events: EventLog
    wire: WireLog | None
    assembly: RunAssembly
    verdict: Verdict
    checked: set[int]
    repeat_summaries: list[Callable[[], dict[str, Any]]]
    threads_before: Threads | None
    _patches: interception.Snapshot

    def check_repeats(self, repeats: Repeats) -> None:
        found = repeats.problems()
        if found:
            raise self.verdict.failure(found)

    def check(self, run: GuardedRun) -> None:
        """The per-run gates of a fixture run, and the test's totals so far."""
        self.checked.add(id(run))
        found = run_violations(self.spec, run) + total_violations(self.spec, self.assembly.calls())
        found += tool_violations(self.spec, self.assembly.all_runs())
        if found:
            raise self.verdict.failure(found)

    def blind_spots(self) -> list[Violation]:
        """What crewguard could not see or answer so far (see :mod:`pytest_crewguard.blind_spots`)."""
        return blind_spots(self.wire, self.events, self._patches, self.nodeid)

    def fail_if_blind(self) -> None:
        found = self.verdict.new(self.blind_spots())
        if found:
            # The first problem alone: a miss explains the errors that follow it.
            raise self.verdict.failure(found, found[0].message)

    def explain(self, err: BaseException) -> GateFailure | None:
        """The test failed with ``err``: the blind spot that caused it, if there is one.

        The application may have caught the stand-in error of a miss and failed later, in its
        own way: the cause, crewguard's message, goes first, not hundreds of lines of the
        application's traceback.
        """
        found = self.verdict.new(self.blind_spots()) or self.verdict.new(self._given_up())
        if not found:
            return None
        then = f"{type(err).__name__}: {err}".strip().splitlines()[0][:300]
        head = found[0].message
        head = head if head.startswith("crewguard:") else f"crewguard: {head}"
        return self.verdict.failure(found, f"{head}\n  (the test then failed with {then})")

    def _given_up(self) -> list[Violation]:
        """Requests the SDK gave up on after injected faults: what a crew's error comes from."""
        crew_events.flush()
        return self.assembly.fault_violations()[:1]

    def finish_call(self) -> None:
        """After the test body: check every run the test did not check yet, and the totals."""
        crew_events.flush()
        self.settle_kickoffs()
        self.fail_if_blind()
        swallowed = self.verdict.swallowed()
        if swallowed is not None:
            raise swallowed
        found: list[Violation] = []
        runs = self.assembly.all_runs()
        for run in runs:
            if id(run) not in self.checked:
                # A request given up on in a failed kickoff may have been answered since, by the
                # model the application fell back to.
                run.gave_up = self.assembly.gave_up(run.kickoff_id)
                found += run_violations(self.spec, run)
        found += total_violations(self.spec, self.assembly.calls())
        found += self.assembly.outside_fault_violations()
        found += tool_violations(self.spec, runs)
        found += application_flow_violations(self.spec.output, self.assembly, self.settings.rootdir)
        found += end_of_test_violations(self.spec.output, runs, self.assembly)
        found += self._application_reuse(runs)
        found += unused_arguments(self)
        found = self.verdict.new(found)
        if found:
            raise self.verdict.failure(found)

    def settle_kickoffs(self, fail: bool = True) -> None:
        """Wait, inside the test's cassette, for kickoffs the application left running; stop
        those that do not end. Their gate fails the test (``fail``), or is only recorded when
        the test failed already."""
        from . import unfinished_kickoffs as unfinished

        own = {run.kickoff_id for run in self.assembly.fixture_runs}  # ended, or already stopped
        seconds = self.spec.max_seconds or unfinished.DEFAULT_WAIT_S
        left, running, waited = unfinished.wait_for(self.events, own, self.threads_before, seconds)
        if not (left or running):
            return
        count, threads = unfinished.stop(left, running, self.nodeid)
        message = unfinished.message(left, count, waited, threads)
        found = self.verdict.new([Violation(Gate.UNFINISHED_KICKOFF, message)])
        if found:
            failure = self.verdict.failure(found)
            if fail:
                raise failure

    def _application_reuse(self, runs: list[GuardedRun]) -> list[Violation]:
        """Crews the application kicked off itself that reuse an object of an earlier run."""
        own = {run.kickoff_id for run in self.assembly.fixture_runs}  # claimed when built
        for run in runs:
            crew = None if run.kickoff_id in own else self.events.kickoff_source(run.kickoff_id)
            if crew is None:
                continue
            try:
                self.used.claim(crew, self.nodeid, again_in_test=True)
            except ReusedObjectError as err:
                # The first only: the others follow from it.
                return [Violation(Gate.REUSED_OBJECT, str(err).removeprefix("crewguard: "))]
        return []

