"""A crew or flow that ran past ``max_seconds``: what it did, where it is stuck, the failure.

The crew and the flow drivers stop waiting the same way; only the noun and the list of
finished calls differ, so the message and the raise live here once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from . import deadline
from . import events as crew_events
from .thread_stop import CrewTimeout
from .verdict import Gate, Violation

if TYPE_CHECKING:
    from .guard_session import GuardSession


@dataclass(frozen=True)
class Overrun:
    """The moment the driver stopped waiting: the limit, the time waited, the stuck threads."""

    max_seconds: float
    waited: float
    stuck: list[threading.Thread]
    stacks: str

    def error(self) -> CrewTimeout:
        """The error the timed-out run is recorded with."""
        return CrewTimeout(f"max_seconds={self.max_seconds:g}")


def stuck_threads(crew: Any, thread: threading.Thread | None) -> list[threading.Thread]:
    """``thread`` (the one that ran the kickoff, if any) first, then the others working for ``crew``."""
    others = [t for t in deadline.threads_of(crew) if t is not thread]
    return [thread, *others] if thread is not None else others


def describe(threads: list[threading.Thread], crew_thread: threading.Thread | None) -> str:
    """Where each of ``threads`` is, for the failure message."""
    stacks = [
        f"  {'crew thread' if t is crew_thread else 'thread'} {t.name}:\n{deadline.stack_of(t)}"
        for t in threads
    ]
    return "\n".join(stacks) or "  (no thread is running the crew any more)"


def stop_waiting(guard: GuardSession, owner: Any, started: float, thread: threading.Thread | None) -> Overrun:
    """Note where ``owner`` (a crew or flow) is stuck and let its finished events arrive."""
    max_seconds = guard.spec.max_seconds or 0.0
    waited = time.perf_counter() - started
    stuck = stuck_threads(owner, thread)
    stacks = describe(stuck, thread)
    crew_events.flush(timeout=1.0)
    return Overrun(max_seconds, waited, stuck, stacks)


def fail(guard: GuardSession, owner: Any, overrun: Overrun, subject: str, noun: str, done: str) -> NoReturn:
    """Free ``owner``'s threads and fail the test with the max_seconds gate.

    ``subject`` names the run in the first line ("crew", "flow Name"), ``noun`` says what was
    stuck ("crew", "flow"), ``done`` lists the LLM calls that finished (empty: none).
    """
    deadline.abandon(owner, overrun.stuck, guard.nodeid)
    message = (
        f"crewguard: the {subject} ran past max_seconds={overrun.max_seconds:g} "
        f"(stopped waiting after {overrun.waited:.2f} s); the test fails now instead of hanging.\n"
        f"  LLM calls finished so far:\n{done or '    (none finished)'}\n"
        f"  Where the {noun} was:\n" + overrun.stacks
    )
    violation = Violation(Gate.MAX_SECONDS, message, {"waited_s": overrun.waited})
    failure = guard.verdict.failure([violation], message)
    # Raised from None: an exception being handled by the caller is not part of this failure.
    raise failure from None
