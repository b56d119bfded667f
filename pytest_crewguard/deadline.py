"""Deadlines on crew kickoffs, and what becomes of a crew that outlives one.

Python cannot kill a thread. A kickoff that runs past ``max_seconds`` is waited for no longer:
the test fails, the crew's threads are told to stop (:mod:`.thread_stop`), and whatever cannot
stop (a tool blocked in C code for good) is left behind and remembered. CrewAI runs an agent's
rounds on asyncio worker threads, which are not daemon threads, so one left behind would keep
the process from exiting after its summary; :func:`left_behind` names them, so that the
session can end without them.

This module does not import pytest: it knows threads and crews, not tests.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .thread_stop import interrupt, unblock_read

# Frames of the machinery every thread runs on: they say nothing about where a crew is stuck
# (crewguard's own socket check included: it wraps every send and receive).
_PLUMBING = tuple(
    f"{os.sep}{name}"
    for name in (
        "threading.py", "selectors.py", f"asyncio{os.sep}", f"concurrent{os.sep}",
        f"pytest_crewguard{os.sep}network.py",
    )
)


def _frames(thread: threading.Thread) -> list[traceback.FrameSummary] | None:
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return None
    return [f for f in traceback.extract_stack(frame) if not any(p in f.filename for p in _PLUMBING)]


def stack_of(thread: threading.Thread) -> str:
    """Where ``thread`` is: its crew and application frames, other libraries' summarised."""
    frames = _frames(thread)
    if frames is None:
        return "  (thread has finished)"
    # CrewAI's and the application's frames tell where the crew is; runs of other libraries'
    # frames (SDK, HTTP client) are summarised, except the innermost one, where it waits.
    lines: list[str] = []
    hidden: list[str] = []
    for index, summary in enumerate(frames):
        package = summary.filename.split(f"site-packages{os.sep}", 1)
        library = package[1].split(os.sep, 1)[0] if len(package) == 2 else None
        if library not in (None, "crewai") and index < len(frames) - 1:
            hidden.append(library)
            continue
        if hidden:
            lines.append(f"  ... {len(hidden)} frames in {', '.join(dict.fromkeys(hidden))}\n")
            hidden = []
        lines += traceback.format_list([summary])
    return "".join(lines)


def _works_for(owner: Any, mine: set[int]) -> bool:
    if owner is None:
        return False
    try:
        bound = [owner, getattr(owner, "crew", None), getattr(owner, "agent", None)]
    except Exception:  # an object whose attributes cannot be read is not CrewAI's
        return False
    return any(id(o) in mine for o in bound if o is not None)


def threads_of(crew: Any) -> list[threading.Thread]:
    """The threads working for ``crew``: some frame runs a method of it, its agents or tasks,
    or of an object bound to one of them (CrewAI's agent executor).

    CrewAI runs each agent's LLM calls on asyncio worker threads, and ``kickoff_async`` runs
    the whole kickoff on one, so that is where a slow provider call blocks. CrewAI's event bus
    threads and the application's own threads are not the crew's: never shown, never stopped.
    """
    mine = {id(crew)} | {id(o) for o in [*getattr(crew, "agents", []), *getattr(crew, "tasks", [])]}
    frames = sys._current_frames()
    found = []
    for thread in threading.enumerate():
        if thread is threading.current_thread():
            continue
        frame = frames.get(thread.ident or -1)
        while frame is not None:
            if _works_for(frame.f_locals.get("self"), mine):
                found.append(thread)
                break
            frame = frame.f_back
    return found


@dataclass
class Outcome:
    """What a call run under a deadline came to: finished (output or error), or still running."""

    finished: bool
    output: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None  # the thread that ran it


def call_with_deadline(call: Callable[[], Any], seconds: float, name: str) -> Outcome:
    """Run ``call`` in a daemon thread named ``name`` and wait for it at most ``seconds``."""
    outcome = Outcome(finished=False)
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome.output = context.run(call)
        except BaseException as err:
            outcome.error = err

    thread = threading.Thread(target=target, name=name, daemon=True)
    outcome.thread = thread
    thread.start()
    thread.join(seconds)
    outcome.finished = not thread.is_alive()
    return outcome


async def await_with_deadline(
    make: Callable[[], Coroutine[Any, Any, Any]], seconds: float, name: str
) -> Outcome:
    """Await the coroutine ``make()`` at most ``seconds``, on an event loop of its own.

    Not on the caller's loop: ``Crew.kickoff_async`` runs the kickoff in the loop's default
    executor, and ``asyncio.run`` (like pytest-asyncio) waits for that executor's threads when
    the loop closes, so a stuck crew would hold the test until it returned, deadline or not.
    The coroutine runs in a daemon thread named ``name`` with a copy of the caller's context.
    """
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Outcome] = loop.create_future()
    context = contextvars.copy_context()

    def deliver(outcome: Outcome) -> None:
        if not result.done():
            result.set_result(outcome)

    def target() -> None:
        outcome = Outcome(finished=True, thread=threading.current_thread())
        try:
            outcome.output = context.run(lambda: asyncio.run(make()))
        except BaseException as err:
            outcome.error = err
        try:
            loop.call_soon_threadsafe(deliver, outcome)
        except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
            pass

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        return await asyncio.wait_for(result, seconds)
    except TimeoutError:
        return Outcome(finished=False, thread=thread)


@dataclass
class _Abandoned:
    owner: str  # who gave up on the crew: the test's node id
    crew: Any
    threads: list[threading.Thread] = field(default_factory=list)


_abandoned: list[_Abandoned] = []
_abandoned_lock = threading.Lock()


# How long threads that take up an abandoned crew's work are still stopped (see abandon).
LATECOMERS_WATCH_S = 3.0


def abandon(crew: Any, threads: list[threading.Thread], owner: str) -> None:
    """Stop waiting for ``crew``: tell its threads to stop, and remember those that do not.

    Also those working for it now, and for a few seconds those that start to: on a loaded
    machine the agent's next LLM call may only be handed to a fresh worker thread after the
    crew was found stuck, and that call would run to its end (a slow provider's minutes).
    """
    entry = _Abandoned(owner, crew)
    with _abandoned_lock:
        # A crew whose threads all ended is not kept: it holds nothing up any more.
        _abandoned[:] = [e for e in _abandoned if any(t.is_alive() for t in e.threads)]
        _abandoned.append(entry)
    _stop(entry, [*threads, *threads_of(crew)])
    watcher = threading.Thread(target=_stop_latecomers, args=(entry,), daemon=True)
    watcher.name = "crewguard-stop-latecomers"
    watcher.start()


def _stop(entry: _Abandoned, threads: list[threading.Thread]) -> None:
    for thread in threads:
        if thread in entry.threads or thread is threading.current_thread():
            continue
        with _abandoned_lock:
            entry.threads.append(thread)
        interrupt(thread)
        unblock_read(thread)


def _stop_latecomers(entry: _Abandoned) -> None:
    until = time.monotonic() + LATECOMERS_WATCH_S
    while time.monotonic() < until:
        time.sleep(0.05)
        _stop(entry, threads_of(entry.crew))


def is_abandoned(crew: Any) -> bool:
    """Whether crewguard already stopped waiting for ``crew`` (its test failed for it)."""
    with _abandoned_lock:
        return any(entry.crew is crew for entry in _abandoned)


def left_behind(grace: float) -> list[tuple[threading.Thread, str]]:
    """Threads of abandoned crews that would keep the interpreter from exiting, with their owner.

    Waits up to ``grace`` seconds for them to end on their own. Daemon threads other than pool
    workers are not counted: they do not hold the interpreter; nor are idle pool workers (nothing
    but thread and executor plumbing on their stack): the pool lets them go at exit. Besides the
    threads seen when the crew was abandoned, any thread working for an abandoned crew by now
    is counted too.
    """
    with _abandoned_lock:
        abandoned = list(_abandoned)
    if not abandoned:
        return []
    end = time.monotonic() + grace
    while True:
        found: dict[threading.Thread, str] = {}
        for entry in abandoned:
            for thread in [*entry.threads, *threads_of(entry.crew)]:
                if _holds_exit(thread):
                    found.setdefault(thread, entry.owner)
        if not found or time.monotonic() >= end:
            return list(found.items())
        time.sleep(0.05)


def _holds_exit(thread: threading.Thread) -> bool:
    if not thread.is_alive() or thread is threading.main_thread() or not _frames(thread):
        return False
    if not thread.daemon:
        return True  # the interpreter joins every non-daemon thread at exit
    # A pool worker is joined at exit too, daemon or not (concurrent.futures' exit hook), and
    # asyncio's default executor is such a pool: a worker started from a daemon thread is one.
    pool = sys.modules.get("concurrent.futures.thread")
    workers = getattr(pool, "_threads_queues", None)
    return workers is None or thread in workers


def where(thread: threading.Thread) -> str:
    """The innermost application or library frame ``thread`` runs, as ``file:line in function``."""
    frames = _frames(thread)
    if not frames:
        return "(finished)"
    last = frames[-1]
    path = last.filename
    if path.startswith(os.getcwd() + os.sep):
        path = os.path.relpath(path)
    return f"{path}:{last.lineno} in {last.name}"


def left_behind_lines(left: list[tuple[threading.Thread, str]], exit_status: int | None) -> list[str]:
    """What :func:`left_behind` found, naming each thread, its test and where it is stuck.

    ``exit_status``: the status the process is about to end with, or ``None`` if it is not.
    """
    plural = len(left) > 1
    then = (
        f"ending it now with exit status {exit_status}"
        if exit_status is not None
        else "it ends when they do"
    )
    head = (
        f"crewguard: {len(left)} thread{'s' if plural else ''} of crews crewguard stopped waiting for "
        f"{'are' if plural else 'is'} still running and would keep this process from exiting; {then}:"
    )
    return [head, *(f"  {thread.name} ({owner}): {where(thread)}" for thread, owner in left)]
