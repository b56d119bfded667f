"""What faults and waits a test's requests met, kept until the answer they were waiting for.

A fault answer and the backoff after it happen in the thread (or asyncio task) that sends the
request, before the SDK retries it there. So both are held per sender and handed to that
sender's next LLM exchange: that call is the one that was retried and waited. Each fault also
keeps the CrewAI event scope it was sent in: an LLM call scope whose faults no answer followed
is one the SDK gave up on.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .events import EventLog

Scope = tuple[tuple[str, str], ...]
SenderKey = tuple[int, int]


def sender_key() -> SenderKey:
    """The sending thread and, in async code, its task (concurrent tasks share a thread)."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), id(task) if task is not None else 0


def scope_id(scope: Scope, event_type: str) -> str | None:
    for event_id, kind in reversed(scope):
        if kind == event_type:
            return event_id
    return None


def run_of(scope: Scope) -> str | None:
    """The run a scope is in: its crew's kickoff, else its ``Agent.kickoff()``."""
    return scope_id(scope, "crew_kickoff_started") or scope_id(scope, "lite_agent_execution_started")


@dataclass(frozen=True)
class FaultSeen:
    """One fault answer served in replay."""

    kind: str  # "429", "500", "503", "529", "timeout"
    model: str | None
    scope: Scope
    sender: SenderKey
    position: int  # how many exchanges the test had logged when the fault was served


@dataclass(frozen=True)
class Wait:
    """One wait that advanced the virtual clock instead of sleeping."""

    seconds: float
    kind: str  # "retry" (SDK backoff) or "rpm" (CrewAI's max_rpm controller)
    scope: Scope


@dataclass(frozen=True)
class _Pending:
    kind: str | None  # a fault kind, or None for a wait
    seconds: float
    kickoff: str | None
    model: str | None


class FaultLog:
    """The faults served and the virtual waits of one test, and who has not been answered yet."""

    def __init__(self) -> None:
        self.faults: list[FaultSeen] = []
        self.waits: list[Wait] = []
        self._pending: dict[SenderKey, list[_Pending]] = {}
        self._lock = threading.Lock()

    def fault(self, kind: str, model: str | None, scope: Scope, position: int) -> None:
        key = sender_key()
        with self._lock:
            self.faults.append(FaultSeen(kind, model, scope, key, position))
            kickoff = run_of(scope)
            self._pending.setdefault(key, []).append(_Pending(kind, 0.0, kickoff, model))

    def waited(self, seconds: float, kind: str, scope: Scope) -> None:
        key = sender_key()
        with self._lock:
            self.waits.append(Wait(seconds, kind, scope))
            kickoff = run_of(scope)
            self._pending.setdefault(key, []).append(_Pending(None, seconds, kickoff, None))

    def pending(self) -> bool:
        """Whether any sender has faults or waits not yet taken by an answer."""
        with self._lock:
            return bool(self._pending)

    def take(self, scope: Scope, model: str | None) -> tuple[tuple[str, ...], float]:
        """The faults and waits the calling sender met since its last answer, for this answer.

        Those of another kickoff, or faults of another model (a request the SDK gave up on
        before the application fell back to this model), were not met by this request.
        """
        kickoff = run_of(scope)
        with self._lock:
            pending = [p for p in self._pending.pop(sender_key(), []) if p.kickoff == kickoff]
        kinds = tuple(p.kind for p in pending if p.kind is not None and p.model == model)
        return kinds, sum(p.seconds for p in pending)


def who_from_events(events: EventLog, scope: Scope, patience_s: float = 2.0) -> tuple[str | None, str | None]:
    """The agent role and task name of the request sent in ``scope``.

    CrewAI's event handlers run on a pool, shortly after the event: the scope's agent and
    task events may not be in the log yet when the request is sent, so they are waited for.
    """
    agent_id = scope_id(scope, "agent_execution_started")
    task_id = scope_id(scope, "task_started")
    llm_id = scope_id(scope, "llm_call_started")
    wanted = [i for i in (agent_id, task_id, llm_id) if i is not None]
    end = time.monotonic() + patience_s
    while any(events.get(i) is None for i in wanted) and time.monotonic() < end:
        time.sleep(0.005)
    agent_event, task_event, llm_event = (events.get(i) for i in (agent_id, task_id, llm_id))
    agent = (agent_event.agent_role if agent_event else None) or (llm_event.agent_role if llm_event else None)
    task = (task_event.task_name if task_event else None) or (llm_event.task_name if llm_event else None)
    return agent, task


def unanswered(log: FaultLog, answered: Callable[[FaultSeen], bool]) -> list[FaultSeen]:
    """Faults after which the request was not answered (the SDK gave up), in order."""
    return [f for f in log.faults if not answered(f)]


def describe_fault(fault: FaultSeen, events: EventLog) -> str:
    from .faults import fault_kind_label

    agent, task = who_from_events(events, fault.scope, patience_s=0.0)
    return (
        f"{fault_kind_label(fault.kind)}: {fault.model or '(model unknown)'} {agent or '-'} / {task or '-'}"
    )
