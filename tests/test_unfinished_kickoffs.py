"""Which threads a test leaves behind are waited for at its end, tested in-process (the
kickoffs themselves: tests/hostile/test_hangs.py)."""

from __future__ import annotations

import threading

from pytest_crewguard.events import EventLog
from pytest_crewguard.unfinished_kickoffs import SETTLE_S, _may_kick_off, threads_now, wait_for


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


def test_a_thread_of_the_test_is_waited_for_until_it_ends_and_a_library_thread_not_at_all() -> None:
    before = threads_now()
    gate, served = threading.Event(), threading.Event()
    server = threading.Thread(target=served.wait, daemon=True)  # stays for the whole check
    server.start()
    worker = threading.Thread(target=lambda: gate.wait(5), daemon=True)
    worker.start()
    threading.Timer(0.2, gate.set).start()
    try:
        left, running, waited = wait_for(EventLog(), (), before, seconds=5)
        assert (left, running) == ([], [])
        assert not worker.is_alive() and server.is_alive()
        assert waited < SETTLE_S + 1  # it ended at the worker, not at the settle time's end
        assert wait_for(EventLog(), (), threads_now(), seconds=5)[2] < SETTLE_S
    finally:
        served.set()
