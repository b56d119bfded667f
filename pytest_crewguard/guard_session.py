"""The guard around one test: its cassette and environment, and what it saw.

Its checks, which decide the verdict, are in :mod:`pytest_crewguard.guard_verdicts`.

The pytest plugin drives it (start, finish the call, close, build the record); any other
driver, a benchmark for instance, starts one with :meth:`GuardSession.for_test`. It knows
nothing of pytest: a failed gate is raised as :class:`~pytest_crewguard.verdict.GateFailure`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import events as crew_events
from . import interception
from .cassette_location import cassette_path
from .cassette_writers import writing_as
from .environment import new_storage_root, placeholder_keys, storage_dir_for
from .errors import CrewguardError
from .events import EventLog
from .guard_verdicts import GuardVerdicts
from .isolation import ReusedObjectError, UsedObjects
from .ledger import LLMCall
from .marker import GuardSpec
from .match_config import MatchConfig
from .network import network_blocked
from .pricing import PriceTable
from .repeat import Repeats
from .run import GuardedRun
from .run_assembly import RunAssembly
from .secret_values import forget_remembered, secrets_fixed
from .session import CrewguardSession, GuardedTest
from .settings import Settings
from .storage import remove_if_disposable, remove_if_empty, storage_at
from .tls import shared_tls_context
from .verdict import Gate, Verdict, Violation
from .wire import WireLog

if TYPE_CHECKING:
    from .unfinished_kickoffs import Threads


class GuardSession(GuardVerdicts):
    """Everything crewguard keeps about one guarded test, from setup to its record."""

    def __init__(
        self,
        *,
        spec: GuardSpec,
        nodeid: str,
        settings: Settings,
        results: CrewguardSession,
        used: UsedObjects,
        storage_root: Path,
        match_config: MatchConfig | None = None,
    ) -> None:
        self.spec = spec
        self.nodeid = nodeid
        self.settings = settings
        self.results = results
        self.used = used
        self.match_config = match_config or MatchConfig()
        self.record_mode = settings.record_mode_for(spec.record_mode)
        self.cassette_path = cassette_path(settings.cassette_dir, nodeid, spec.cassette)
        self.events = EventLog()
        self.wire: WireLog | None = None
        self.assembly = RunAssembly(lambda: self.wire, self.events, results.prices, settings.rootdir)
        self.verdict = Verdict()
        self.checked: set[int] = set()  # ids of runs whose per-run gates were already checked
        # The threads alive when the body began, and where each was (begin_call).
        self.threads_before: Threads | None = None
        self.storage_dir: Path = storage_root  # the test's own directory once started
        self.repeat_summaries: list[Callable[[], dict[str, Any]]] = []  # per kickoff call
        self._storage_root = storage_root
        self.fixture_kickoffs_running = 0  # crewguard.kickoff* calls under way (see body_watchdog)
        # Set by cut_short: the test was interrupted while recording, its cassette is not written.
        self._keep_cassette = False
        self._cut_short = False
        self._cassette_existed = False
        self._recording = False
        self._stack = ExitStack()
        self._patches: interception.Snapshot = {}

    @classmethod
    def for_test(
        cls,
        nodeid: str,
        *,
        rootdir: Path,
        spec: GuardSpec | None = None,
        record_mode: str = "none",
        cassette_dir: Path | None = None,
        results: CrewguardSession | None = None,
        storage_root: Path | None = None,
        used: UsedObjects | None = None,
        match_config: MatchConfig | None = None,
    ) -> GuardSession:
        """A guard for one test outside pytest, with the plugin's defaults: replay only,
        cassettes under ``rootdir/cassettes``, built-in prices, CrewAI storage of its own
        (removed by :meth:`close` when nothing in it must stay) unless ``storage_root`` is given."""
        own_root = storage_root is None
        root = storage_root or new_storage_root()
        session = cls(
            spec=spec or GuardSpec(),
            nodeid=nodeid,
            settings=Settings.defaults(rootdir, record_mode, cassette_dir),
            results=results or CrewguardSession(prices=PriceTable()),
            used=used or UsedObjects(),
            storage_root=root,
            match_config=match_config,
        )
        if own_root:  # removed once empty: stores left for later tests' cached clients stay
            session._stack.callback(remove_if_empty, root)
        return session

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Enter the test's storage, event log and cassette; undone by :meth:`close`."""
        try:
            self._enter()
        except BaseException:
            self._stack.close()  # a half-started guard must not leave patches behind
            raise

    def _enter(self) -> None:
        from . import vcr_setup

        forget_remembered()  # an earlier test's credentials are not this test's to scrub
        directory = storage_dir_for(self._storage_root, self.nodeid)
        # Removed when the test ends (after CrewAI's storage is pointed back) unless it holds
        # memory or knowledge stores, so a suite's storage in memory stays small.
        self._stack.callback(remove_if_disposable, directory)
        self.storage_dir = self._stack.enter_context(storage_at(directory))
        if "crewai" in sys.modules or _crewai_available():
            # Attached at every test, not once per process: a project's fixture may have
            # cleared CrewAI's event bus after the previous test.
            crew_events.activate(self.events)
            crew_events.reset_scope()
            self._stack.callback(crew_events.activate, None)
        exists = self._cassette_existed = self.cassette_path.exists()
        if self.record_mode != "none" and not (self.record_mode == "once" and exists):
            from .cassette_writers import check_writable

            check_writable(self.cassette_path)  # before the provider is paid for what cannot be kept
        # Tells the cassette writer which test writes, so shared cassettes merge or conflict clearly.
        writing_as(self.cassette_path, self.nodeid, self.record_mode, self.results)
        cassette = self._stack.enter_context(
            vcr_setup.cassette(
                self.cassette_path,
                self.record_mode,
                self.match_config,
                skip_write=lambda: bool(self.wire and self.wire.error_answers()) or self._keep_cassette,
            )
        )
        self.wire = WireLog(
            cassette,
            nodeid=self.nodeid,
            record_mode=self.record_mode,
            cassette_path=self.display(self.cassette_path),
            cassette_exists=exists,
            match_config=self.match_config,
            keep_errors=self.spec.record_errors,
            shared=self.spec.cassette is not None,
        )
        cassette.wire = self.wire
        self._recording = not cassette.write_protected
        self._patches = interception.snapshot()
        # `none`, and `once` with an existing cassette: nothing may reach the network.
        if cassette.write_protected:
            self._replay_faults_and_waits(self.wire)
            self._stack.enter_context(network_blocked(self.settings.allow_hosts + self.spec.allow_hosts))
            self._stack.enter_context(placeholder_keys())
            # Replay writes nothing: the secrets to match requests without are the ones set now.
            self._stack.enter_context(secrets_fixed())
            self._stack.enter_context(shared_tls_context())

    def _replay_faults_and_waits(self, wire: WireLog) -> None:
        """Replay does not sleep: retry backoff and max_rpm waits go to the run's projected time;
        and the marker's ``faults=`` are answered before the recordings."""
        from .fault_log import who_from_events
        from .faults import FaultInjector
        from .virtual_clock import virtual_waits

        if self.spec.faults is not None:
            wire.injector = FaultInjector(self.spec.faults)
            wire.who = lambda scope: who_from_events(self.events, scope)
        self._stack.enter_context(virtual_waits(wire.waited))

    def cut_short(self, err: BaseException) -> str | None:
        """The test body ended with ``err``, not with a gate's verdict, while recording: returns
        the note for the table (``None``: not recording). An interrupt (Ctrl-C, a signal) in
        ``rewrite``, or in ``once`` for a new cassette, leaves the cassette as it was: the
        recording is partial, and a whole one must not be replaced by it. A failure is written as
        vcrpy writes it (its calls were paid for), and the note says what it holds."""
        # A fault recorded on purpose (record_errors) keeps its error: that is the recording.
        if not self._recording or self._cut_short or self.spec.record_errors:
            return None
        self._cut_short = True
        why, where = type(err).__name__, self.display(self.cassette_path)
        if isinstance(err, KeyboardInterrupt | SystemExit) and self.record_mode in ("rewrite", "once"):
            self._keep_cassette = True
            kept = "the one before is kept" if self._cassette_existed else "none was written"
            return (
                f"stopped while recording ({why}): {where} would hold part of the test's calls, "
                f"so {kept}; record it again"
            )
        return (
            f"failed while recording ({why}): {where} holds the calls made before "
            "the failure; if the failure stopped the test early, record it again once it passes"
        )

    def close(self) -> str | None:
        """Leave the cassette (writing it when recording) and restore the environment.

        Returns the problem, if writing the cassette was refused or failed.
        """
        try:
            self._stack.close()
        except CrewguardError as err:
            return str(err).replace(str(self.cassette_path), self.display(self.cassette_path))
        return None

    def display(self, path: Path) -> str:
        """``path`` relative to the rootdir when it is under it, for messages and the table."""
        try:
            return str(path.relative_to(self.settings.rootdir))
        except ValueError:
            return str(path)

    # -- what the test did -----------------------------------------------------------------

    def calls(self) -> list[LLMCall]:
        crew_events.flush()
        return self.assembly.calls()

    def runs(self) -> list[GuardedRun]:
        crew_events.flush()
        return self.assembly.all_runs()

    def claim(self, crew: Any) -> None:
        """Take ``crew`` for this test; a crew another test used fails it (``reused_object``)."""
        try:
            self.used.claim(crew, self.nodeid)
            refused = None
        except ReusedObjectError as err:
            refused = str(err)
        if refused is not None:  # raised outside the except block: no chained traceback
            raise self.verdict.failure([Violation(Gate.REUSED_OBJECT, refused)], refused)
        prompt_file = getattr(crew, "prompt_file", None)
        if prompt_file:
            self.assembly.prompt_files.add(str(prompt_file))

    @contextmanager
    def fixture_kickoff(self) -> Iterator[None]:
        """A ``crewguard.kickoff*`` call runs: its own deadline applies, not the body's watchdog."""
        self.fixture_kickoffs_running += 1
        try:
            yield
        finally:
            self.fixture_kickoffs_running -= 1

    def repeats(self) -> Repeats:
        repeats = Repeats(self.spec, self.storage_dir, self.wire, self.events)
        self.repeat_summaries.append(repeats.summary)
        return repeats

    def begin_call(self) -> None:
        """The test body starts: threads it starts from now on may run kickoffs of its own, and
        a fixture set up after the guard's may have cleared CrewAI's event bus meanwhile."""
        from .unfinished_kickoffs import threads_now

        self.threads_before = threads_now()
        if "crewai.events" in sys.modules:
            crew_events.activate(self.events)  # registers only the handlers that are missing

    def notes(self) -> list[str]:
        """What this test's numbers rest on that a reader should know (shown under the table)."""
        from .guard_record import notes

        return notes(self)

    def result(self, notes: list[str] | None = None) -> GuardedTest:
        """This test's record for the end-of-run table, built once its verdict is final."""
        from .guard_record import record_of

        return record_of(self, notes or [])


def _crewai_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("crewai") is not None
