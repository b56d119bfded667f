"""``CrewGuard``: the ``crewguard`` fixture. Runs crews inside the test's cassette and limits."""

from __future__ import annotations

import contextvars
import ctypes
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from . import events as crew_events
from .cassette_location import cassette_path
from .environment import STORAGE_VARIABLE, test_storage_dir
from .errors import CassetteMiss, CrewguardError
from .events import EventLog
from .isolation import ReusedObjectError, UsedObjects
from .ledger import LLMCall, build_calls, forced_final_answer_texts
from .limits import run_violations, total_violations
from .marker import GuardSpec
from .network import network_blocked
from .options import Settings
from .run import GuardedRun
from .session import CrewguardSession, TestRecord
from .wire import WireRecorder

Factory = Callable[[], Any]


class CrewTimeout(BaseException):
    """Raised inside a crew thread that outlived ``max_seconds`` (best effort)."""


def _is_crew(obj: Any) -> bool:
    return hasattr(obj, "kickoff") and hasattr(obj, "agents")


def _stack_of(thread: threading.Thread) -> str:
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "  (thread has finished)"
    return "".join(traceback.format_stack(frame)[-12:])


def _busy_crew_threads(exclude: threading.Thread) -> list[threading.Thread]:
    """Other threads currently inside CrewAI or an HTTP client (where a hang usually is)."""
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        if thread is exclude or thread is threading.main_thread() or thread.ident not in frames:
            continue
        stack = traceback.extract_stack(frames[thread.ident])
        if any(("crewai" in f.filename or "httpx" in f.filename) for f in stack):
            busy.append(thread)
    return busy


def _interrupt(thread: threading.Thread) -> None:
    # Python cannot kill a thread; this raises CrewTimeout in it at its next bytecode, which
    # ends a crew stuck in Python code. One blocked in a socket read ends when the read does.
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(thread.ident), ctypes.py_object(CrewTimeout)
        )


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
    ) -> None:
        self.spec = spec
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
        self.recorder: WireRecorder | None = None
        self.refused: list[str] = []
        self.failed_gates: list[str] = []
        self.outcome = "passed"

    # -- lifecycle (driven by the plugin) --------------------------------------------------

    def start(self) -> None:
        from . import vcr_setup

        old_storage = os.environ.get(STORAGE_VARIABLE)
        os.environ[STORAGE_VARIABLE] = str(test_storage_dir(self._storage_root, self.nodeid))
        self._stack.callback(self._restore_env, old_storage)
        if "crewai" in sys.modules or _crewai_available():
            crew_events.activate(self.events)
            self._stack.callback(crew_events.activate, None)
        cassette = self._stack.enter_context(vcr_setup.cassette(self.cassette_path, self.record_mode))
        self.recorder = WireRecorder(
            cassette,
            nodeid=self.nodeid,
            record_mode=self.record_mode,
            cassette_path=self._display(self.cassette_path),
        )
        if self.record_mode == "none":
            self.refused = self._stack.enter_context(network_blocked())

    def close(self) -> str | None:
        """Leave the cassette (writing it when recording) and restore the environment.

        Returns the problem, if writing the cassette was refused or failed.
        """
        try:
            self._stack.close()
        except CrewguardError as err:
            return str(err).replace(str(self.cassette_path), self._display(self.cassette_path))
        return None

    @staticmethod
    def _restore_env(old: str | None) -> None:
        if old is None:
            os.environ.pop(STORAGE_VARIABLE, None)
        else:
            os.environ[STORAGE_VARIABLE] = old

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
        return round(sum(c.cost for c in self.calls if c.cost is not None), 10)

    @property
    def tokens(self) -> int:
        return sum(c.tokens for c in self.calls)

    def kickoff(self, factory: Factory | Any, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """Build a crew with ``factory`` and kick it off under the marker's limits.

        With ``repeat=N`` the factory runs N times and the runs are checked for isolation;
        the first run is returned and :attr:`runs` holds all of them.
        """
        runs = []
        for _ in range(self.spec.repeat):
            crew = self._build(factory)
            runs.append(self._guarded(crew, partial(crew.kickoff, inputs=inputs)))
        return runs[0]

    async def kickoff_async(self, factory: Factory | Any, inputs: dict[str, Any] | None = None) -> GuardedRun:
        """The same as :meth:`kickoff`, through ``Crew.kickoff_async``."""
        import asyncio

        runs = []
        for _ in range(self.spec.repeat):
            crew = self._build(factory)
            started = time.perf_counter()
            error: BaseException | None = None
            output = None
            try:
                call: Awaitable[Any] = crew.kickoff_async(inputs=inputs)
                if self.spec.max_seconds is not None:
                    output = await asyncio.wait_for(call, self.spec.max_seconds)
                else:
                    output = await call
            except TimeoutError:
                self._fail_timeout(crew, started, None)
            except BaseException as err:
                error = err
            runs.append(self._finish_run(crew, output, started, error))
        return runs[0]

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
        except ReusedObjectError as err:
            self.failed_gates.append("reused_object")
            pytest.fail(str(err), pytrace=False)
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
        except CassetteMiss as miss:
            error = miss
        except Exception as err:
            error = err
        return self._finish_run(crew, output, started, error)

    def _with_deadline(self, crew: Any, call: Callable[[], Any], started: float) -> Any:
        box: dict[str, Any] = {}
        context = contextvars.copy_context()

        def target() -> None:
            try:
                box["output"] = context.run(call)
            except BaseException as err:
                box["error"] = err

        thread = threading.Thread(target=target, name=f"crewguard-kickoff[{self.nodeid}]", daemon=True)
        thread.start()
        thread.join(self.spec.max_seconds)
        if thread.is_alive():
            self._fail_timeout(crew, started, thread)
        if "error" in box:
            raise box["error"]
        return box.get("output")

    def _fail_timeout(self, crew: Any, started: float, thread: threading.Thread | None) -> None:
        waited = time.perf_counter() - started
        stacks = []
        if thread is not None:
            stacks.append(f"  crew thread {thread.name}:\n{_stack_of(thread)}")
            for other in _busy_crew_threads(thread):
                stacks.append(f"  thread {other.name}:\n{_stack_of(other)}")
        crew_events.flush(timeout=1.0)
        calls = [c for c in self._calls() if c.kickoff_id in self._kickoff_ids(crew)]
        done = (
            "\n".join(
                f"    {i + 1}. {c.model} {c.agent or '-'} / {c.task or '-'} "
                f"in={c.input_tokens} out={c.output_tokens}"
                for i, c in enumerate(calls)
            )
            or "    (none finished)"
        )
        if thread is not None:
            _interrupt(thread)
        self.failed_gates.append("max_seconds")
        pytest.fail(
            f"crewguard: the crew ran past max_seconds={self.spec.max_seconds:g} "
            f"(stopped waiting after {waited:.2f} s); the test fails now instead of hanging.\n"
            f"  LLM calls finished so far:\n{done}\n"
            "  Where the crew was:\n" + "\n".join(stacks),
            pytrace=False,
        )

    def _finish_run(self, crew: Any, output: Any, started: float, error: BaseException | None) -> GuardedRun:
        elapsed = time.perf_counter() - started
        crew_events.flush()
        ids = self._kickoff_ids(crew)
        kickoff_id = next((i for i in ids if i not in {r.kickoff_id for r in self._fixture_runs}), None)
        run = self._make_run(kickoff_id, output, elapsed, error)
        self._fixture_runs.append(run)
        misses = self.recorder.misses if self.recorder else []
        if misses:
            self.failed_gates.append("cassette_miss")
            pytest.fail(misses[0], pytrace=False)
        if error is not None:
            from .output_schema import crewai_output_error

            problem = crewai_output_error(error)
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
        replayed = self._replayed_ids(kickoff_id)
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

    def _replayed_ids(self, kickoff_id: str | None) -> bool:
        if self.recorder is None or kickoff_id is None:
            return False
        return any(
            w.replayed for w in self.recorder.calls if w.scope_id("crew_kickoff_started") == kickoff_id
        )

    def _calls(self) -> list[LLMCall]:
        if self.recorder is None:
            return []
        force = forced_final_answer_texts(self._prompt_files) if "crewai" in sys.modules else []
        return build_calls(list(self.recorder.calls), self.events, self.session.prices, force)

    def _all_runs(self) -> list[GuardedRun]:
        """Fixture runs plus kickoffs the application made itself, in start order."""
        known = {r.kickoff_id for r in self._fixture_runs}
        runs = list(self._fixture_runs)
        for started in self.events.ordered("crew_kickoff_started"):
            if started.event_id in known:
                continue
            done = [
                e
                for e in self.events.ordered("crew_kickoff_completed", "crew_kickoff_failed")
                if e.started_id == started.event_id
            ]
            end = done[0].timestamp if done and done[0].timestamp else started.timestamp
            elapsed = (end or 0.0) - (started.timestamp or 0.0)
            runs.append(self._make_run(started.event_id, None, max(elapsed, 0.0), None))
        order = {e.event_id: e.sequence for e in self.events.ordered("crew_kickoff_started")}
        return sorted(runs, key=lambda r: order.get(r.kickoff_id or "", 1 << 62))

    # -- verdicts --------------------------------------------------------------------------

    def _check(self, run: GuardedRun) -> None:
        self._checked.add(id(run))
        found = run_violations(self.spec, run) + total_violations(self.spec, self._calls())
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            pytest.fail("crewguard: " + "\n".join(message for _, message in found), pytrace=False)

    def finish_call(self) -> None:
        """After the test body: check every run the test did not check yet, and the totals."""
        crew_events.flush()
        misses = self.recorder.misses if self.recorder else []
        if misses and "cassette_miss" not in self.failed_gates:
            self.failed_gates.append("cassette_miss")
            pytest.fail(misses[0], pytrace=False)
        found: list[tuple[str, str]] = []
        for run in self._all_runs():
            if id(run) not in self._checked:
                found += run_violations(self.spec, run)
        found += total_violations(self.spec, self._calls())
        found = [f for f in found if f[0] not in self.failed_gates]
        if found:
            self.failed_gates.extend(gate for gate, _ in found)
            pytest.fail("crewguard: " + "\n".join(message for _, message in found), pytrace=False)

    def record(self) -> TestRecord:
        """This test's numbers for the end-of-run table."""
        crew_events.flush()
        record = TestRecord.build(self.nodeid, self._calls(), self._all_runs())
        record.failed_gates = list(self.failed_gates)
        record.outcome = self.outcome
        return record


def _crewai_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("crewai") is not None
