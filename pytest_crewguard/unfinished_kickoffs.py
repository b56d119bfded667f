"""Crew kickoffs still running when the test body returns.

An application may start a crew on a thread of its own and return at once (an endpoint that
answers 202). Left alone, the crew's next calls would go out after the test's cassette and
network block are gone: to the provider in replay, with whatever key the environment holds, or
into the next test's cassette and numbers. So the guard waits for such kickoffs while the
test's cassette still answers, and stops (as ``max_seconds`` does) those that do not end.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Collection
from types import FrameType
from typing import Any, NamedTuple

from . import events as crew_events
from .events import CrewEvent, EventLog
from .run_assembly import KICKOFF_ENDS
from .thread_work import Frames, cpu_ns, queued_ns, runs_application_code, work_waiting

DEFAULT_WAIT_S = 10.0  # without max_seconds: replayed crews end in well under a second
SETTLE_S = 1.0  # for a thread of the test to reach its kickoff (or end)
_POLL_S = 0.02
_PARKED_S = 0.1  # a thread seen in the same place this long is waiting, not working
_BUSY_SHARE = 0.25  # of a CPU, used or waited for: a working thread asks for all of one


def unfinished(events: EventLog, skip: Collection[str | None] = ()) -> list[CrewEvent]:
    """Crew kickoffs of ``events`` with no end event yet (those in ``skip`` aside)."""
    ended = {end.started_id for end in events.of_types(*KICKOFF_ENDS)}
    return [
        started
        for started in events.of_types("crew_kickoff_started")
        if started.event_id not in ended and started.event_id not in skip
    ]


Where = tuple[tuple[tuple[int, int], ...], int]  # a thread's frames (code id, line), CPU ns


class Threads(NamedTuple):
    """The threads alive at one moment (``at``, monotonic seconds), with where each was."""

    at: float
    where: dict[threading.Thread, Where]


def threads_now(frames: Frames | None = None) -> Threads:
    """The threads alive now, with where each is: those the test body starts are the ones not
    among them (by object: a finished thread's ident is given to the next one), and one that
    was there but has moved on has been given work (a job submitted to a pool, say).
    ``frames``: a look taken already."""
    frames = sys._current_frames() if frames is None else frames
    where = {t: (_stack(frames.get(t.ident or -1)), cpu_ns(t)) for t in threading.enumerate()}
    return Threads(time.monotonic(), where)


def _stack(frame: FrameType | None) -> tuple[tuple[int, int], ...]:
    where = []
    while frame is not None:
        where.append((id(frame.f_code), frame.f_lineno))
        frame = frame.f_back
    return tuple(where)


def wait_for(
    events: EventLog, skip: Collection[str | None], before: Threads | None, seconds: float
) -> tuple[list[CrewEvent], list[threading.Thread], float]:
    """Wait up to ``seconds`` for the kickoffs of ``events`` that some thread still runs, and
    for the threads the test body started (not in ``before``; all, without it) that run one.

    A thread busy with the application's code or CrewAI's that is not in a kickoff yet
    (building its crew, a job just handed to a pool) gets :data:`SETTLE_S` to get there or
    end: its kickoff may not have started when the body returned. One that stays where it is
    between two looks, asking for next to no CPU (a poller waiting, a server loop), is not
    waited for. Returns the kickoffs and kickoff threads still running, and the time waited.
    """
    started = time.monotonic()
    last = before or threads_now()
    there_before = {} if before is None else before.where
    moved: dict[threading.Thread, float] = {}  # when each thread was last seen somewhere new
    queued: dict[threading.Thread, int] = {}  # run-queue time of the threads seen working
    me = threading.current_thread()
    while True:
        crew_events.flush()
        # A kickoff that a BaseException (pytest.skip, KeyboardInterrupt) ended has no end event:
        # it runs only while some thread still holds its crew.
        left = [k for k in unfinished(events, skip) if _object_with_id(k.source_id) is not None]
        frames = sys._current_frames()  # one look at every thread, for all that follows
        now = threads_now(frames)
        kickoffs = {t: kickoff_of(t, frames) for t in now.where if t not in there_before}
        # A crew stopped at max_seconds has failed its test already: not waited for again.
        running = [t for t, crew in kickoffs.items() if crew is not None and not _given_up(crew)]
        for thread in now.where:
            if thread is not me and _working(thread, now, last, queued, thread in moved):
                moved[thread] = now.at
        busy = [t for t in now.where if t in moved and now.at - moved[t] < _PARKED_S]
        waited = now.at - started
        # A thread the body started gets the whole second while it may: it may be waiting for
        # something before its kickoff (a timer's delay, a subprocess, a lock).
        fresh = [t for t, crew in kickoffs.items() if crew is None] if before is not None else []
        settling = waited < SETTLE_S and (
            any(runs_application_code(t, frames) for t in {*busy, *fresh} if kickoffs.get(t) is None)
            or work_waiting((t for t in now.where if t is not me), frames)
        )
        if not (left or running or settling) or waited >= seconds:
            return left, running, waited
        last = now
        time.sleep(_POLL_S)


def _working(
    thread: threading.Thread, now: Threads, last: Threads, queued: dict[threading.Thread, int], seen: bool
) -> bool:
    """Whether ``thread`` was at work between the looks ``last`` and ``now``: somewhere new, or
    asking for a good share of a CPU. A thread ``seen`` working before is also asked how long
    it waited for one (reading that costs more, so only for those)."""
    stack, cpu = now.where[thread]
    previous = last.where.get(thread)
    if previous is None or previous[0] != stack:
        return True
    demand = cpu - previous[1]
    if seen:
        waiting, queued[thread] = queued.get(thread), queued_ns(thread)
        demand += queued[thread] - waiting if waiting is not None else 0
    return demand >= _BUSY_SHARE * (now.at - last.at) * 1e9


def _given_up(crew: Any) -> bool:
    """A crew crewguard stopped waiting for already (past max_seconds): its test has failed."""
    deadline = sys.modules.get("pytest_crewguard.deadline")
    return deadline is not None and bool(deadline.is_abandoned(crew))


def kickoff_of(thread: threading.Thread, frames: Frames | None = None) -> Any:
    """The crew (or flow, or agent) whose ``kickoff`` ``thread`` is running, if any."""
    frame = (sys._current_frames() if frames is None else frames).get(thread.ident or -1)
    found = None
    while frame is not None:
        name = str(frame.f_globals.get("__name__", ""))
        if frame.f_code.co_name.startswith("kickoff") and name.startswith("crewai"):
            found = frame.f_locals.get("self", found)  # the outermost kickoff wins
        frame = frame.f_back
    return found


def stop(kickoffs: list[CrewEvent], threads: list[threading.Thread], owner: str) -> tuple[int, list[str]]:
    """Stop the threads running ``kickoffs`` or a kickoff in ``threads`` (best effort, see
    :mod:`.deadline`): how many crews, and each thread named with where it is."""
    from . import deadline

    crews = {id(crew): crew for crew in map(kickoff_of, threads) if crew is not None}
    for kickoff in kickoffs:
        crew = _object_with_id(kickoff.source_id)
        if crew is not None:  # else ended meanwhile, or run where no frame holds it
            crews.setdefault(id(crew), crew)
    shown = []
    for crew in crews.values():
        found = deadline.threads_of(crew)
        shown += [f"{thread.name} at {deadline.where(thread)}" for thread in found]
        deadline.abandon(crew, found, owner)
    return max(len(crews), len(kickoffs)), shown


def held_objects(*, include_current: bool = False) -> dict[int, Any]:
    """Every ``self`` the threads' frames hold, by id: the crews (and agents, flows) whose
    methods some thread runs. The calling thread's own frames only with ``include_current``."""
    me = threading.get_ident()
    held: dict[int, Any] = {}
    for thread_id, frame in sys._current_frames().items():
        if thread_id == me and not include_current:
            continue
        while frame is not None:
            owner = frame.f_locals.get("self")
            if owner is not None:
                held.setdefault(id(owner), owner)
            frame = frame.f_back  # type: ignore[assignment]
    return held


def _object_with_id(wanted: int | None) -> Any:
    """The crew whose kickoff a thread is running, found by its id among the threads' frames."""
    return None if wanted is None else held_objects().get(wanted)


def message(left: list[CrewEvent], count: int, waited: float, threads: list[str]) -> str:
    """The failure of a test that returned while ``count`` kickoffs it started were running."""
    names = ", ".join(repr(k.crew_name) for k in left if k.crew_name)
    where = "".join(f"\n    {thread}" for thread in threads)
    return (
        f"{count} crew kickoff(s) started in this test{f' ({names})' if names else ''} were still "
        f"running {waited:.1f}s after the test body returned; crewguard stopped them, so that their "
        "calls do not go out after the test's cassette closes (to the provider, or into the next "
        f"test's cassette). Their calls so far are counted.{where}\n"
        "  Wait for the kickoff before the test returns (join its thread, await its task or "
        "future); the marker's max_seconds sets how long crewguard waits (default "
        f"{DEFAULT_WAIT_S:.0f}s)."
    )
