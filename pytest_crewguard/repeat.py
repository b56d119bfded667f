"""``repeat=N``: run the factory N times, each run in storage of its own, and compare the runs.

A run starts clean when nothing of an earlier run reaches it: not CrewAI's storage (each run
gets a directory of its own, so memory saved by run 1 is not recalled by run 2), not objects
(refused by :mod:`.isolation`), and not state the application keeps in the process, which is
what the comparison of the runs' provider requests (:mod:`.leaks`) and of their retained
heap (:mod:`.heap`) catch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Any

from . import events as crew_events
from .events import EventLog
from .heap import DEFAULT_MAX_MEMORY_GROWTH, HeapMeter
from .leaks import compare_runs, report
from .marker import GuardSpec
from .run import GuardedRun
from .sent_requests import SentRequest, run_calls
from .storage import run_storage, storage_at
from .verdict import Gate, Violation
from .wire import HttpExchange, WireLog


class Repeats:
    """The runs of one ``crewguard.kickoff`` call; a no-op unless ``repeat`` > 1."""

    def __init__(
        self, spec: GuardSpec, storage_dir: Path, wire: WireLog | None, events: EventLog
    ) -> None:
        self.spec = spec
        self.enabled = spec.repeat > 1
        self.storage_dir = storage_dir
        self.wire = wire
        self.events = events
        self.heap = HeapMeter()
        self.calls: list[list[SentRequest]] = []

    def __enter__(self) -> Repeats:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.heap.stop()

    @contextmanager
    def storage(self, number: int) -> Iterator[Path]:
        """Run ``number``'s own CrewAI storage (the test's directory when not repeating)."""
        if not self.enabled:
            with nullcontext(self.storage_dir) as path:
                yield path
            return
        with storage_at(run_storage(self.storage_dir, number)) as path:
            yield path

    def finished(self, run: GuardedRun | None, exchanges: list[HttpExchange] | None = None) -> None:
        """Keep what run ``run`` (or a flow: its ``exchanges``) sent and received, then sample
        the heap it left behind."""
        if not self.enabled:
            return
        crew_events.flush()
        if exchanges is not None:
            mine = exchanges
        else:
            mine = self.wire.calls_of(run.kickoff_id) if self.wire and run else []
        self.calls.append(run_calls(mine, self.events))
        # Tracing starts once run 1 is over: run 1 pays for CrewAI's lazy imports and caches
        # (tracing those takes up to a minute) and is the baseline the later runs must keep to.
        if len(self.calls) == 1:
            self.heap.start()
        self.heap.sample()

    @property
    def memory_limit(self) -> int:
        limit = self.spec.max_memory_growth
        return DEFAULT_MAX_MEMORY_GROWTH if limit is None else limit

    def problems(self) -> list[Violation]:
        """Violations for runs that leaked into each other or grew the heap."""
        if not self.enabled:
            return []
        found: list[Violation] = []
        leaks, differences = compare_runs(self.calls)
        message = report(leaks, differences, self.spec.repeat)
        if message:
            found.append(Violation(Gate.REPEAT, message))
        growth = self.heap.verdict(self.memory_limit)
        if growth:
            found.append(Violation(Gate.MAX_MEMORY_GROWTH, growth))
        return found

    def summary(self) -> dict[str, Any]:
        """Numbers for tests and reports: heap samples and calls per run."""
        return {"heap": list(self.heap.samples), "calls": [len(c) for c in self.calls]}
