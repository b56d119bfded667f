"""Python heap retained across repeated runs of one factory.

With ``repeat=N`` the heap is traced (``tracemalloc``) from the end of the first run, which
warms CrewAI's lazy imports and caches; after each later run, and a full garbage collection,
the size of what is still alive is one sample (run 1's sample is the empty baseline). A crew
that keeps something from every run (a module-level list, a cache keyed by run, a registry of
crews) grows by about the same amount after each run; a clean crew barely grows.

Tracing slows allocation down, so it only runs for repeated tests, and only after run 1:
traced, a first run that imports CrewAI's lazy modules and the price data takes ~50 s
instead of ~1 s.
"""

from __future__ import annotations

import gc
import itertools
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

# Measured with repeat=6 on clean crews against the scripted provider, recorded and replayed
# (crewai 1.15.30, Python 3.11): one agent 13-20 KB per run, one agent with a tool 19-27 KB,
# two agents 20-26 KB, kickoff_async 11-17 KB, memory=True 22-41 KB (one transient step of
# +420 KB while memory's background writer was busy), knowledge 21-31 KB. That is the run's
# own output and CrewAI's per-run bookkeeping. 1 MB per run is 25x the steady growth and
# more than twice the largest transient step, and still fails a crew that keeps 1 MB per run.
DEFAULT_MAX_MEMORY_GROWTH = 1_000_000
TOP_SITES = 3
# Deep enough to reach, from an allocation, the crewguard or vcrpy code that made it (a
# response body is read several frames below vcrpy's stub); not so deep that every allocation of a
# crew reaches crewguard's kickoff() (a crew call stack is 30+ frames deep). Each frame costs:
# with 10, a warm one-call run takes ~0.7 s traced instead of ~0.15 s.
FRAMES = 10
_HERE = Path(__file__).parent
# What crewguard keeps of every run on purpose (the recorded exchanges, their text for the
# comparison of runs, events, the ledger) and vcrpy's recording of the traffic: it grows with
# each run, but it is not the crew's doing.
OWN_CODE: tuple[str, ...] = (
    str(_HERE / "wire.py"),
    str(_HERE / "leaks.py"),
    str(_HERE / "sent_requests.py"),
    str(_HERE / "events.py"),
    str(_HERE / "ledger.py"),
    str(_HERE / "usage.py"),
    str(_HERE / "repeat.py"),
    "*/vcr/*",
    tracemalloc.__file__,
)


def size(n: float) -> str:
    """``1.5 MB``, ``820.0 KB``, ``312 B`` (decimal units)."""
    sign = "-" if n < 0 else ""
    n = abs(n)
    if n >= 1_000_000:
        return f"{sign}{n / 1_000_000:.1f} MB"
    if n >= 1_000:
        return f"{sign}{n / 1_000:.1f} KB"
    return f"{sign}{n:.0f} B"


@dataclass
class HeapMeter:
    """Samples the traced heap after each run; started and stopped around the runs."""

    samples: list[int] = field(default_factory=list)
    _owns_tracing: bool = False
    _first: tracemalloc.Snapshot | None = None
    _last: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        gc.collect()
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
            self._owns_tracing = True

    def sample(self) -> int:
        """Collect garbage, then record (and return) the size of the traced live heap."""
        gc.collect()
        # The snapshots kept for the report are traced too; they come from tracemalloc's own
        # module, which is left out with crewguard's and vcrpy's records of the runs.
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, pattern, all_frames=True) for pattern in OWN_CODE]
        )
        current = sum(stat.size for stat in snapshot.statistics("filename"))
        self.samples.append(current)
        if self._first is None:
            self._first = snapshot
        else:
            self._last = snapshot
        return current

    def stop(self) -> None:
        if self._owns_tracing:
            tracemalloc.stop()
            self._owns_tracing = False

    def growth(self) -> list[int]:
        """How much the retained heap grew in each run after the first."""
        return [b - a for a, b in itertools.pairwise(self.samples)]

    def verdict(self, limit: int) -> str | None:
        """The failure message when the heap kept growing by more than ``limit`` per run."""
        steps = self.growth()
        if not steps:
            return None
        per_run = (self.samples[-1] - self.samples[0]) / len(steps)
        # "Keeps growing": the average climb is over the limit, and so is the last step, so a
        # one-off cache filled in run 2 does not fail a crew that has since levelled off.
        if per_run <= limit or steps[-1] <= limit:
            return None
        runs = len(self.samples)
        lines = [
            f"the Python heap kept growing across repeat={runs} runs: {size(per_run)} per run on "
            f"average, over max_memory_growth={limit} ({size(limit)}) per run",
            "  heap retained after each run (traced from the end of run 1, after gc.collect()):",
        ]
        for number, value in enumerate(self.samples, start=1):
            step = (
                "" if number == 1 else f" ({'+' if steps[number - 2] >= 0 else ''}{size(steps[number - 2])})"
            )
            lines.append(f"    run {number}: {size(value)}{step}")
        sites = self.top_sites()
        if sites:
            lines.append(f"  where it grew between run 1 and run {runs}:")
            lines += [f"    {site}" for site in sites]
        lines.append(
            "  Something keeps a reference to every run's objects: a module-level list, dict or "
            "cache, a global registry, or an object built once and fed each run. Keep per-run "
            "state inside the objects the factory builds, or raise max_memory_growth if the "
            "growth is intended."
        )
        return "\n".join(lines)

    def top_sites(self) -> list[str]:
        if self._first is None or self._last is None:
            return []
        stats = self._last.compare_to(self._first, "lineno")
        grown = [s for s in stats if s.size_diff > 0][:TOP_SITES]
        return [
            f"{s.traceback[0].filename}:{s.traceback[0].lineno}: +{size(s.size_diff)} "
            f"in {s.count_diff:+d} blocks"
            for s in grown
        ]
