"""``max_seconds`` for the crews a test's own code kicks off in its body.

``crewguard.kickoff*`` runs its crew under a deadline of its own. A crew the application kicks
off (an endpoint called by the test, a thread it joins) has none: a tool that blocks would hang
the test, and CI with it. While the body runs, an interval timer (SIGALRM, main thread only)
looks every quarter second, once ``max_seconds`` have passed, for a kickoff of this test that
some thread is still running and that started longer than ``max_seconds`` ago; then the test
fails in its main thread, naming where the crew is. Written by hand: pytest-timeout's signal
method does this for a whole test, not for crews; where SIGALRM is taken already (pytest-timeout,
the application) or there is none (Windows, a thread other than the main one) the watchdog stays
off, as before.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import deadline
from .run_assembly import KICKOFF_ENDS, LITE_AGENT
from .unfinished_kickoffs import held_objects
from .verdict import Gate, Violation

if TYPE_CHECKING:
    from .guard_session import GuardSession

_RECHECK_S = 0.25


@contextmanager
def body_watchdog(guard: GuardSession) -> Iterator[None]:
    """Within the block (the test body), fail the test when a crew the body kicked off runs past
    the marker's ``max_seconds``."""
    max_seconds = guard.spec.max_seconds
    usable = (
        max_seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
    )
    if not usable or max_seconds is None:
        yield
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        overdue = _overdue(guard, max_seconds)
        if not overdue:
            signal.setitimer(signal.ITIMER_REAL, _RECHECK_S)
            return
        # Again until the body has left: unwinding may block too (asyncio.run waiting, in its
        # cleanup, for the worker thread the blocked tool runs on).
        signal.setitimer(signal.ITIMER_REAL, _RECHECK_S)
        raise guard.verdict.failure([Violation(Gate.MAX_SECONDS, _message(guard, overdue, max_seconds))])

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max_seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _overdue(guard: GuardSession, max_seconds: float) -> list[tuple[Any, float]]:
    """The crews (or agents) of the body's kickoffs still running, started over ``max_seconds``
    ago, with their ages: a kickoff with no end event whose crew some thread's frames still
    hold (``kickoff_for_each`` runs a copy of the crew; ``Agent.kickoff`` has events of its own)."""
    if guard.fixture_kickoffs_running:  # crewguard.kickoff's own deadline is on it
        return []
    own = {run.kickoff_id for run in guard.assembly.fixture_runs}
    events = guard.events
    ended = {end.started_id for end in events.of_types(*KICKOFF_ENDS)}
    now = time.time()
    unended = [
        started for started in events.of_types("crew_kickoff_started", LITE_AGENT)
        if started.event_id not in ended and started.event_id not in own and started.timestamp is not None
    ]
    old = [k for k in unended if now - (k.timestamp or now) > max_seconds]
    if not old:
        return []
    held = held_objects(include_current=True)  # a main-thread crew is below this handler
    found = [(held[k.source_id], now - (k.timestamp or now)) for k in old if k.source_id in held]
    if not found and not any(k.source_id in held for k in unended) and _threads_in_crewai(guard):
        # A native async kickoff (akickoff) is on no thread's stack while it awaits a tool
        # running in an executor thread, which is in CrewAI's code. Only when no kickoff on a
        # stack explains that thread: an old kickoff a BaseException ended has no end event.
        found = [(None, max(now - (k.timestamp or now) for k in old))]
    return found


def _threads_in_crewai(guard: GuardSession) -> list[threading.Thread]:
    """Threads the body started that run CrewAI's code (a tool it called, an LLM call), its event
    bus aside: one an earlier test left behind (a crew stopped at its max_seconds, blocked in C
    code) is not this test's."""
    before = guard.threads_before.where if guard.threads_before is not None else {}
    frames = sys._current_frames()
    busy = []
    for thread in threading.enumerate():
        if thread.name.startswith("CrewAI") or thread in before:  # the event bus's threads
            continue
        frame = frames.get(thread.ident or -1)
        while frame is not None:
            if str(frame.f_globals.get("__name__", "")).startswith("crewai."):
                busy.append(thread)
                break
            frame = frame.f_back
    return busy


def _message(guard: GuardSession, overdue: list[tuple[Any, float]], max_seconds: float) -> str:
    oldest = max(age for _, age in overdue)
    threads = {t.ident: t for crew, _ in overdue if crew is not None for t in deadline.threads_of(crew)}
    if not threads:
        threads = {t.ident: t for t in _threads_in_crewai(guard) if t is not threading.current_thread()}
    where = "".join(f"\n  thread {t.name}:\n{deadline.stack_of(t)}" for t in threads.values())
    return (
        f"a crew the test's code kicked off ran past max_seconds={max_seconds:g} "
        f"({oldest:.1f}s so far); the test fails now instead of hanging.\n  Where the crew was:"
        f"{where or ' (in the test body)'}\n"
        "  Find what it waits for there (a tool, a lock, a network call), or raise max_seconds."
    )
