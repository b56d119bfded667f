"""Which threads a test leaves behind are waited for at its end, tested in-process (the
kickoffs themselves: tests/hostile/test_hangs.py)."""

from __future__ import annotations

import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pytest_crewguard.events import EventLog
from pytest_crewguard.unfinished_kickoffs import (
    SETTLE_S,
    _callable_may_start_a_crew,
    _may_kick_off,
    threads_now,
    wait_for,
)


def test_only_threads_running_the_applications_code_or_crewais_may_be_about_to_kick_off() -> None:
    # A server's request threads, or CrewAI's event loop, would make every test wait.
    gate = threading.Event()
    library = threading.Thread(target=gate.wait, daemon=True)
    application = threading.Thread(target=lambda: gate.wait(), daemon=True)
    library.start()
    application.start()
    try:
        assert not _may_kick_off(library)
        assert _may_kick_off(application)
    finally:
        gate.set()


def _work(gate: threading.Event) -> None:
    count = 0
    while not gate.is_set():  # working: the thread is somewhere new at every look
        count += 1


def test_a_working_thread_is_waited_for_until_it_ends_and_a_waiting_one_not_at_all() -> None:
    pool = ThreadPoolExecutor(1)
    pool.submit(lambda: None).result()  # the application's pool, there before the test body
    poller_stop = threading.Event()
    poller = threading.Thread(target=lambda: [poller_stop.wait(0.01) for _ in iter(poller_stop.is_set, True)],
                              daemon=True)
    poller.start()  # a heartbeat the test left running: it waits, nothing to wait for
    before = threads_now()
    gate = threading.Event()
    job = pool.submit(_work, gate)  # a job handed to a thread that was already there
    threading.Timer(0.3, gate.set).start()
    try:
        left, running, waited = wait_for(EventLog(), (), before, seconds=5)
        assert (left, running) == ([], [])
        assert job.done()  # waited for, though its thread is not new
        assert waited < SETTLE_S  # ended when the job did
        assert wait_for(EventLog(), (), threads_now(), seconds=5)[2] < SETTLE_S  # the poller: not waited for
    finally:
        poller_stop.set()
        gate.set()
        pool.shutdown()


def _finish(done: list[str]) -> None:
    done.append("job")


class _Application:
    def handle(self) -> None:
        _finish([])


def test_a_job_still_queued_in_the_applications_pool_is_waited_for() -> None:
    # On a loaded machine the pool's thread may not run between the hand-over and the first
    # look: only the pool's queue tells. Here its one thread is busy sleeping (not working).
    pool = ThreadPoolExecutor(1)
    pool.submit(lambda: None).result()
    done: list[str] = []
    pool.submit(time.sleep, 0.3)
    before = threads_now()
    queued = pool.submit(_finish, done)
    try:
        left, running, waited = wait_for(EventLog(), (), before, seconds=5)
        assert (left, running) == ([], [])
        assert done == ["job"] and waited < SETTLE_S
        assert queued.done()
    finally:
        pool.shutdown()


def test_what_a_new_thread_or_a_pools_job_is_about_to_run_is_judged_by_its_code() -> None:
    assert _callable_may_start_a_crew(_finish)  # the application's
    assert _callable_may_start_a_crew(functools.partial(_finish, []))
    assert _callable_may_start_a_crew(_Application().handle)  # a bound method
    assert not _callable_may_start_a_crew(threading.Event().set)  # a library's method
    assert not _callable_may_start_a_crew(EventLog().add)  # crewguard's own
    assert not _callable_may_start_a_crew(time.sleep)  # a builtin
    assert not _callable_may_start_a_crew(json.dumps)  # the standard library's
    assert not _callable_may_start_a_crew(None)
