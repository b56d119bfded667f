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


def end_without_stuck_crews(reporter: Any, status: int, *, program: bool) -> None:
    """Tell which threads are stuck and, when ``program`` (pytest is the process), exit now."""
    deadline = sys.modules.get("pytest_crewguard.deadline")
    if deadline is None:  # no crew ran under a deadline
        return
    left = deadline.left_behind(grace=1.0)
    if not left:
        return
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
