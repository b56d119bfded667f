"""Ending the process when threads of crews that ran past ``max_seconds`` would keep it alive.

Python cannot stop a thread blocked in C code (a tool waiting on a lock for good), and the
interpreter joins CrewAI's worker threads at exit: it would wait after the summary, for ever.
Like pytest-timeout's thread method: flush, then ``os._exit`` with the session's status, once
every report is written.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def stuck_lines(status: int) -> list[str]:
    """In a pytest-xdist worker, at the end of its session: the lines naming the threads that
    would keep it alive, for the controller to show (the worker's own output is not shown)."""
    deadline = sys.modules.get("pytest_crewguard.deadline")
    if deadline is None:
        return []
    left = deadline.left_behind(grace=1.0)
    return list(deadline.left_behind_lines(left, status)) if left else []


def show_worker_lines(reporter: Any, worker: str, lines: list[str]) -> None:
    """In the pytest-xdist controller: a worker's :func:`stuck_lines`, prefixed with its id."""
    if reporter is None:  # -p no:terminal
        return
    reporter.write("\n")  # after the progress characters on the line
    for number, line in enumerate(lines):
        reporter.write_line(f"[{worker}] {line}", red=number == 0)


def end_worker(status: int) -> None:
    """Once a pytest-xdist worker has sent its results, end it if stuck threads would keep it
    alive: the controller would wait for it, then kill it (about 10 s per worker)."""
    deadline = sys.modules.get("pytest_crewguard.deadline")
    if deadline is not None and deadline.left_behind(grace=0.0):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def end_without_stuck_crews(reporter: Any, status: int) -> None:
    """Tell which threads are stuck and, when pytest is the process, exit now."""
    deadline = sys.modules.get("pytest_crewguard.deadline")
    if deadline is None:  # no crew ran under a deadline
        return
    left = deadline.left_behind(grace=1.0)
    if not left:
        return
    program = pytest_is_the_program()
    lines = deadline.left_behind_lines(left, status if program else None)
    if reporter is not None:
        reporter.write_line(lines[0], red=True)
        for line in lines[1:]:
            reporter.write_line(line)
        reporter.flush()
    else:
        sys.stderr.write("\n".join(lines) + "\n")
    if program:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def pytest_is_the_program() -> bool:
    """True when this session is pytest run as the program (``pytest``, ``python -m pytest``).

    Not for ``pytest.main()`` called by another program (an IDE runner, a notebook) nor for a
    session run inside another one (pytester's in-process runs): their process goes on.
    """
    try:
        import _pytest.config
        from _pytest.main import wrap_session

        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        names = ("console_main", "_console_main")  # what pytest's console script calls
        entries = [f for f in (getattr(_pytest.config, n, None) for n in names) if f is not None]
        is_pytest = (spec is not None and spec.name == "pytest.__main__") or any(
            getattr(main, n, None) in entries for n in names
        )
        frame = sys._getframe()
        sessions = 0
        while frame is not None:
            sessions += frame.f_code is wrap_session.__code__
            frame = frame.f_back  # type: ignore[assignment]
        return is_pytest and sessions == 1
    except Exception:  # pytest's internals moved: do not end a process we cannot be sure of
        return False
