"""Which threads a test leaves behind are waited for at its end, tested in-process (the
kickoffs themselves: tests/hostile/test_hangs.py)."""

from __future__ import annotations

import contextvars
import functools
import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pytest_crewguard.events import EventLog
from pytest_crewguard.thread_work import callable_may_start_a_crew, cpu_ns, runs_application_code
from pytest_crewguard.unfinished_kickoffs import SETTLE_S, threads_now, wait_for


def test_only_threads_running_the_applications_code_or_crewais_may_be_about_to_kick_off() -> None:
    # A server's request threads, or CrewAI's event loop, would make every test wait.
    gate = threading.Event()
    library = threading.Thread(target=gate.wait, daemon=True)
    application = threading.Thread(target=lambda: gate.wait(), daemon=True)
    library.start()
    application.start()
    try:
        assert not runs_application_code(library)
        assert runs_application_code(application)
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
    assert callable_may_start_a_crew(_finish)  # the application's
    assert callable_may_start_a_crew(functools.partial(_finish, []))
    assert callable_may_start_a_crew(_Application().handle)  # a bound method
    assert not callable_may_start_a_crew(threading.Event().set)  # a library's method
    assert not callable_may_start_a_crew(EventLog().add)  # crewguard's own
    assert not callable_may_start_a_crew(time.sleep)  # a builtin
    assert not callable_may_start_a_crew(json.dumps)  # the standard library's
    assert not callable_may_start_a_crew(None)
    assert callable_may_start_a_crew(_Job([]))  # an object called as a function
    # asyncio.to_thread hands the pool partial(context.run, function): the function is what runs.
    assert callable_may_start_a_crew(functools.partial(contextvars.copy_context().run, _finish, []))
    assert callable_may_start_a_crew(contextvars.copy_context().run, (_finish, []))


class _Job:
    def __init__(self, done: list[str]) -> None:
        self.done = done

    def __call__(self) -> None:
        _finish(self.done)


def _waited_for(hand_over: Callable[[list[str]], Any]) -> tuple[list[str], float]:
    """What a job handed over as the body ends had done when the wait returned, and the wait."""
    done: list[str] = []
    before = threads_now()
    hand_over(done)
    left, running, waited = wait_for(EventLog(), (), before, seconds=5)
    assert (left, running) == ([], [])
    return done, waited


def test_work_handed_over_in_any_form_is_waited_for() -> None:
    pool = ThreadPoolExecutor(1)
    pool.submit(lambda: None).result()
    try:
        for job in (_Job, lambda done: functools.partial(contextvars.copy_context().run, _finish, done)):
            pool.submit(time.sleep, 0.2)  # its thread is busy waiting: the job stays queued
            assert _waited_for(lambda done, job=job: pool.submit(job(done)))[0] == ["job"]
    finally:
        pool.shutdown()
    # A timer of the application's, not fired yet.
    assert _waited_for(lambda done: threading.Timer(0.3, _finish, [done]).start())[0] == ["job"]
    # A new thread that waits for something before its kickoff (a subprocess, a lock).
    def slow(done: list[str]) -> None:
        time.sleep(0.3)
        _finish(done)

    assert _waited_for(lambda done: threading.Thread(target=slow, args=(done,)).start())[0] == ["job"]


def test_an_item_for_the_applications_queue_consumer_is_waited_for_before_the_consumer_wakes() -> None:
    items: queue.Queue[Callable[[], None]] = queue.Queue()

    def consume() -> None:
        while True:
            items.get()()

    threading.Thread(target=consume, daemon=True).start()
    time.sleep(0.05)  # parked in get

    def put_unseen(done: list[str]) -> None:
        # As on a loaded machine: the item is there, the consumer has not run since.
        with items.mutex:
            items.queue.append(lambda: _finish(done))
            items.unfinished_tasks += 1

        def wake() -> None:
            with items.not_empty:
                items.not_empty.notify()

        threading.Timer(0.3, wake).start()

    assert _waited_for(put_unseen)[0] == ["job"]


def test_pools_whose_queues_hold_no_application_job_cost_no_wait() -> None:
    class Bounded(ThreadPoolExecutor):  # a pool with a queue of another kind
        def __init__(self) -> None:
            super().__init__(1)
            self._work_queue: Any = queue.Queue(maxsize=100)

    bounded, closed = Bounded(), ThreadPoolExecutor(1)
    for pool in (bounded, closed):
        pool.submit(lambda: None).result()
    closed.shutdown()  # leaves its stop signal in the queue
    bounded.submit(time.sleep, SETTLE_S)
    bounded.submit(time.sleep, 0.01)  # a library's job, queued all the while
    try:
        assert _waited_for(lambda done: None)[1] < SETTLE_S / 2
    finally:
        bounded.shutdown(wait=False, cancel_futures=True)


def test_the_cpu_time_of_a_thread_that_ended_reads_as_zero() -> None:
    thread = threading.Thread(target=lambda: sum(range(100_000)))
    thread.start()
    thread.join()
    task = Path(f"/proc/self/task/{thread.native_id}")
    for _ in range(200):  # the system lets the thread go a moment after Python's join returns
        if not task.exists():
            break
        time.sleep(0.01)
    assert cpu_ns(thread) == 0  # by the thread's id: no read of a thread that is gone
    assert cpu_ns(threading.current_thread()) > 0


class _Proxy:
    def __getattr__(self, name: str) -> Any:  # a lazy proxy that raises when looked at
        raise RuntimeError(f"not loaded: {name}")

    def __call__(self) -> None:
        pass


def test_work_that_raises_when_looked_at_is_not_the_tests_failure() -> None:
    class Unsized(queue.Queue):  # type: ignore[type-arg]
        def qsize(self) -> int:
            raise RuntimeError("qsize unsupported")

    items = Unsized()
    threading.Thread(target=lambda: items.get(), daemon=True).start()  # an application consumer
    pool = ThreadPoolExecutor(1)
    pool.submit(lambda: None).result()
    pool.submit(time.sleep, 0.2)
    try:
        done, _ = _waited_for(lambda done: pool.submit(_Proxy()))
        assert done == []  # judged "not known to start a crew", and no exception
    finally:
        items.put(None)
        pool.shutdown()


def test_crewais_own_timers_left_running_cost_no_wait() -> None:
    # A crew with max_rpm leaves CrewAI's counter-reset timers running after its kickoff.
    from crewai import Agent, Crew, Task
    from crewai.llms.base_llm import BaseLLM

    class Answers(BaseLLM):
        def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
            return "done"

    agent = Agent(role="R", goal="g", backstory="b", llm=Answers(model="stub"), max_iter=2)
    crew = Crew(agents=[agent], tasks=[Task(description="d", expected_output="e", agent=agent)], max_rpm=10)
    before = threads_now()
    crew.kickoff()
    assert any(isinstance(thread, threading.Timer) for thread in threading.enumerate())
    assert wait_for(EventLog(), (), before, seconds=5)[2] < SETTLE_S / 2
