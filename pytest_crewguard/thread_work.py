"""What a thread is at: the application's code or CrewAI's (which may start a crew) or an
installed library's; and work handed to a thread that has not run it yet (a pool's queued job,
an item waiting for a queue's consumer, a timer's function), which on a loaded machine may
not have run at all by the time the test body returns.

Also how much CPU a thread asks for, which tells a working thread from a waiting one.
"""

from __future__ import annotations

import contextvars
import functools
import gc
import inspect
import os
import queue
import site
import sys
import sysconfig
import threading
import time
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any

# Where installed code lives (the standard library, site-packages, a distribution's
# dist-packages, the user's site): the rest is the application's.
_PATHS = sysconfig.get_paths()
_LIBRARIES = (
    *{_PATHS[n] for n in ("stdlib", "platstdlib", "purelib", "platlib") if n in _PATHS},
    *site.getsitepackages(),
    *([site.getusersitepackages()] if site.ENABLE_USER_SITE else []),
    "<frozen ",
)
_QUEUE_FRAMES = 4  # a consumer waiting in queue.get: get and the lock's wait above it


def may_start_a_crew(filename: str, module: str, crewai: bool = True) -> bool:
    """Whether code of ``module`` (in ``filename``) is CrewAI's (not its event bus; not at all
    unless ``crewai``) or the application's own, not installed code's."""
    if module.startswith("crewai"):
        return crewai and not module.startswith("crewai.events")
    return not filename.startswith(_LIBRARIES) and not module.startswith("pytest_crewguard")


def callable_may_start_a_crew(function: Any, args: tuple[Any, ...] = (), crewai: bool = True) -> bool:
    """Whether calling ``function`` (with ``args``) runs the application's code (or CrewAI's,
    when ``crewai``) first: seen through partials, ``Context.run`` (how ``asyncio.to_thread``
    hands a function to a pool), decorators, bound methods and callable objects."""
    try:
        return _may_start_a_crew_when_called(function, args, crewai)
    except Exception:  # an object that raises when looked at (a lazy proxy): not known to
        return False


def _may_start_a_crew_when_called(function: Any, args: tuple[Any, ...], crewai: bool) -> bool:
    function = inspect.unwrap(_called(function, args))
    target = getattr(function, "__func__", function)  # a bound method's function
    code = getattr(target, "__code__", None)
    if code is None and not isinstance(target, type) and callable(target):
        call = type(target).__call__  # an object called as a function
        code = getattr(getattr(call, "__func__", call), "__code__", None)
        target = call
    if code is None:  # a builtin, or a class (its __init__ runs first: judged once it does)
        return False
    return may_start_a_crew(code.co_filename, str(getattr(target, "__module__", "") or ""), crewai)


def _called(function: Any, args: tuple[Any, ...]) -> Any:
    for _ in range(8):  # partial(ctx.run, partial(f, x)): a few layers at most
        if isinstance(function, functools.partial):
            function, args = function.func, (*function.args, *args)
        elif isinstance(getattr(function, "__self__", None), contextvars.Context) and args:
            function, args = args[0], args[1:]
        else:
            break
    return function


Frames = Mapping[int, FrameType]  # sys._current_frames(): one look at every thread


def runs_application_code(thread: threading.Thread, frames: Frames | None = None) -> bool:
    """Whether ``thread`` runs the application's code or CrewAI's (building a crew, say), as a
    thread about to kick one off does, or is about to (a new thread's target, a timer's
    function, a pool's job it took); not a server's or a library's thread serving requests,
    nor CrewAI's event-bus threads. ``frames``: a look taken already."""
    frame = (sys._current_frames() if frames is None else frames).get(thread.ident or -1)
    about_to_run: list[tuple[Any, tuple[Any, ...], bool]] = []
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if may_start_a_crew(frame.f_code.co_filename, module):
            return True
        if module == "concurrent.futures.thread" and frame.f_code.co_name == "_worker":
            about_to_run.append((*_job_call(frame.f_locals.get("work_item")), True))
        elif module == "threading" and frame.f_code.co_name == "_bootstrap_inner":
            if isinstance(thread, threading.Timer):
                # The application's timer only: CrewAI's own (its max_rpm counter's reset, every
                # minute, left running after the kickoff) starts no crew.
                about_to_run.append((thread.function, tuple(thread.args), False))
            else:
                about_to_run.append((getattr(thread, "_target", None) or type(thread).run, (), True))
        frame = frame.f_back
    return any(callable_may_start_a_crew(*job) for job in about_to_run)


def work_waiting(threads: Iterable[threading.Thread], frames: Frames | None = None) -> bool:
    """Whether work that may start a crew waits for a thread to take it: a job in a thread
    pool's queue, or an item in the queue a consumer of the application's waits on."""
    frames = sys._current_frames() if frames is None else frames
    return _pool_jobs_waiting() or any(_consumer_has_work(frames.get(t.ident or -1)) for t in threads)


def _job_call(job: Any) -> tuple[Any, tuple[Any, ...]]:
    """A pool job's function and arguments (``None``: no job)."""
    return getattr(job, "fn", None), tuple(getattr(job, "args", ()))


def _pool_jobs_waiting() -> bool:
    pools = sys.modules.get("concurrent.futures.thread")
    queues = getattr(pools, "_threads_queues", None)
    if not queues:
        return False
    for work_queue in {id(q): q for q in list(queues.values())}.values():
        jobs = _jobs_in(work_queue) if _holds_items(work_queue) else []
        if any(callable_may_start_a_crew(*_job_call(job)) for job in jobs):
            return True
    return False


def _holds_items(work_queue: Any) -> bool:
    try:
        return bool(work_queue.qsize())
    except Exception:  # a queue of the application's kind that cannot tell
        return False


def _jobs_in(work_queue: Any) -> list[Any]:
    """The pool jobs (objects with ``fn``) a work queue holds, whatever its kind."""
    held = getattr(work_queue, "queue", None)  # queue.Queue and its kinds: a deque, a heap
    items: list[Any] = []
    if held is not None and hasattr(work_queue, "mutex"):
        with work_queue.mutex:
            items = list(held)
    else:  # a SimpleQueue cannot be looked into; the collector sees what it holds
        for referent in gc.get_referents(work_queue):
            if isinstance(referent, list):  # up to Python 3.12: the list of items
                items.extend(referent)
            elif not isinstance(referent, type):  # since 3.13: the items themselves
                items.append(referent)
    jobs = []
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):  # a priority queue's entries
            if hasattr(part, "fn"):
                jobs.append(part)
    return jobs


def _consumer_has_work(frame: FrameType | None) -> bool:
    """A thread (at ``frame``) of the application's waiting in ``queue.Queue.get`` on a queue
    with an item: woken, but perhaps not run since."""
    for _ in range(_QUEUE_FRAMES):
        if frame is None:
            return False
        if frame.f_code.co_name == "get" and frame.f_globals.get("__name__") == "queue":
            waiting_on = frame.f_locals.get("self")
            try:  # the queue's own count: a subclass's qsize may do anything
                holds = isinstance(waiting_on, queue.Queue) and bool(waiting_on._qsize())
            except Exception:
                return False
            return holds and _has_application_frame(frame)
        frame = frame.f_back
    return False


def _has_application_frame(frame: FrameType | None) -> bool:
    while frame is not None:
        if may_start_a_crew(frame.f_code.co_filename, str(frame.f_globals.get("__name__", ""))):
            return True
        frame = frame.f_back
    return False


def cpu_ns(thread: threading.Thread) -> int:
    """The CPU time ``thread`` has used, in ns (0 where the platform does not tell): a working
    thread uses CPU, a waiting one next to none, wherever the interpreter switched it out."""
    native = getattr(thread, "native_id", None)
    if sys.platform.startswith("linux") and native is not None:
        # Linux's clock of a thread by its id: a thread that ended meanwhile is an error here,
        # where pthread_getcpuclockid would read the thread's freed memory (and may crash).
        try:
            return time.clock_gettime_ns(((~native) << 3) | 6)
        except (OSError, OverflowError):
            return 0
    clock = getattr(time, "pthread_getcpuclockid", None)
    if clock is None or thread.ident is None:
        return 0
    try:
        return time.clock_gettime_ns(clock(thread.ident))
    except (OSError, OverflowError):  # ended meanwhile
        return 0


def queued_ns(thread: threading.Thread) -> int:
    """How long ``thread`` has waited for a CPU while ready to run, in ns (Linux's schedstat; 0
    elsewhere). On a loaded machine a working thread may get no CPU between two looks (other
    processes hold the cores, or the GIL's handoff passed it by): it waits in the run queue
    meanwhile, which a thread waiting for an event does not."""
    try:
        fd = os.open(f"/proc/self/task/{thread.native_id}/schedstat", os.O_RDONLY)
    except OSError:
        return 0
    try:
        return int(os.read(fd, 128).split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        os.close(fd)
