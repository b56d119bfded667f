"""CrewAI's events, collected for the test that is running.

CrewAI runs event handlers on a thread pool, out of order, and swallows their exceptions. The
handlers here therefore only copy the few fields crewguard needs into a plain record, under a
lock; everything is read after ``crewai_event_bus.flush()``, ordered by kickoff, then by
``emission_sequence`` (which CrewAI restarts at every kickoff). Handlers are registered once
per process (the bus is a singleton), when a log is first activated, and write to whichever
:class:`EventLog` is active.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .event_fields import (
    agent_role,
    clean,
    field_of,
    lite_agent_role,
    output_of,
    task_name,
    timestamp_of,
    tool_fields,
)


@dataclass(frozen=True)
class CrewEvent:
    """The parts of one CrewAI event that crewguard uses."""

    event_id: str
    type: str
    sequence: int
    parent_id: str | None
    agent_role: str | None = None
    task_name: str | None = None
    tool_name: str | None = None
    tool_args: str | None = None
    source_id: int | None = None
    error: str | None = None
    timestamp: float | None = None
    started_id: str | None = None  # on an ending event: the event that opened its scope
    output: Any = None  # on crew_kickoff_completed: the final task's TaskOutput; task_completed: its own
    crew_name: str | None = None  # on crew_kickoff_started
    method_name: str | None = None  # on method_execution_started: the flow step
    flow_name: str | None = None  # on flow_started / method_execution_started
    # Tool rounds: the arguments as given, the text fed back to the model, whether CrewAI's
    # tool cache answered, the exception's class, and which cache the executor reads.
    tool_input: Any = None
    result: str | None = None
    from_cache: bool = False
    error_type: str | None = None
    cache_id: int | None = None


@dataclass
class EventLog:
    """The events of one test, by id."""

    records: dict[str, CrewEvent] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # The crew each kickoff started with (weakly held): the application's own are claimed
    # at the end of the test, as crewguard.kickoff claims the crews it builds.
    _kickoff_sources: dict[str, Any] = field(default_factory=dict)

    def add(self, record: CrewEvent) -> None:
        with self._lock:
            self.records[record.event_id] = record

    def kicked_off(self, event_id: str, crew: Any) -> None:
        try:
            held: Any = weakref.ref(crew)
        except TypeError:
            return
        with self._lock:
            self._kickoff_sources[event_id] = held

    def kickoff_source(self, event_id: str | None) -> Any:
        """The crew the kickoff ``event_id`` started with, if it is still alive."""
        with self._lock:
            held = self._kickoff_sources.get(event_id or "")
        return held() if held is not None else None

    def get(self, event_id: str | None) -> CrewEvent | None:
        if event_id is None:
            return None
        with self._lock:
            return self.records.get(event_id)

    def count(self, event_type: str) -> int:
        """How many events of ``event_type`` were logged."""
        return len(self.of_types(event_type))

    def of_types(self, *types: str) -> list[CrewEvent]:
        """Events of the given types, in no particular order (cheaper than :meth:`ordered`)."""
        with self._lock:
            return [record for record in self.records.values() if record.type in types]

    def ordered(self, *types: str) -> list[CrewEvent]:
        """Events of the given types (all when none given), in emission order.

        CrewAI restarts ``emission_sequence`` at every top-level kickoff, so events are ordered
        by when their top-level scope (the kickoff) started, then by sequence within it.
        """
        with self._lock:
            records = dict(self.records)
        roots: dict[str, float] = {}

        def started(record: CrewEvent) -> float:
            chain = [record]
            seen = {record.event_id}
            while chain[-1].parent_id in records and chain[-1].parent_id not in seen:
                seen.add(str(chain[-1].parent_id))
                chain.append(records[str(chain[-1].parent_id)])
            top = chain[-1]
            if top.event_id not in roots:
                roots[top.event_id] = top.timestamp or 0.0
            return roots[top.event_id]

        chosen = [r for r in records.values() if not types or r.type in types]
        return sorted(chosen, key=lambda r: (started(r), r.sequence))

    def descendants(self, root_id: str) -> list[CrewEvent]:
        """Events whose parent chain reaches ``root_id``, in emission order."""
        with self._lock:
            records = dict(self.records)
        found: list[CrewEvent] = []
        for record in records.values():
            seen: set[str] = set()
            parent = record.parent_id
            while parent is not None and parent not in seen:
                if parent == root_id:
                    found.append(record)
                    break
                seen.add(parent)
                up = records.get(parent)
                parent = up.parent_id if up else None
        return sorted(found, key=lambda r: r.sequence)


_active: EventLog | None = None
_active_lock = threading.Lock()


# Kickoffs seen start since crewguard's handlers were first attached, by id: a call from one of
# them that lands in a test whose log never saw it comes from a kickoff that outlived its own
# test or fixture.
_kickoffs_seen: dict[str, None] = {}
_KICKOFFS_KEPT = 10_000
_kickoffs_lock = threading.Lock()


def _collect(source: Any, event: Any) -> None:
    if event.type == "crew_kickoff_started":  # also between guarded tests
        with _kickoffs_lock:  # handlers run on CrewAI's thread pool
            _kickoffs_seen[str(event.event_id)] = None
            if len(_kickoffs_seen) > _KICKOFFS_KEPT:
                del _kickoffs_seen[next(iter(_kickoffs_seen))]
    log = _active
    if log is None:
        return
    if event.type == "crew_kickoff_started" and source is not None:
        log.kicked_off(str(event.event_id), source)
    agent = field_of(event, "agent")
    task = field_of(event, "task")
    args = field_of(event, "tool_args")
    error = field_of(event, "error")
    log.add(
        CrewEvent(
            event_id=str(event.event_id),
            type=str(event.type),
            sequence=int(field_of(event, "emission_sequence") or 0),
            parent_id=field_of(event, "parent_event_id"),
            agent_role=clean(field_of(event, "agent_role")) or agent_role(agent) or lite_agent_role(event),
            task_name=clean(field_of(event, "task_name")) or task_name(task),
            tool_name=field_of(event, "tool_name"),
            tool_args=None if args is None else str(args)[:300],
            source_id=id(source) if source is not None else None,
            error=None if error is None else str(error)[:500],
            timestamp=timestamp_of(event),
            started_id=field_of(event, "started_event_id"),
            # Kickoffs made by application code return their output to it, not to the
            # fixture; this event is the only place the marker's output gate can see it.
            output=output_of(event),
            crew_name=clean(field_of(event, "crew_name")),
            method_name=field_of(event, "method_name"),
            flow_name=field_of(event, "flow_name"),
            **tool_fields(source, event),
        )
    )


@lru_cache(maxsize=1)
def _event_classes() -> tuple[type[Any], ...]:
    from crewai.events.types import agent_events, crew_events, flow_events, llm_events, task_events
    from crewai.events.types import tool_usage_events as tools

    return (
        # CrewAI's agent executor is a Flow: LLM and tool events are children of its
        # flow_started scope, so without these the parent chain stops short of the kickoff.
        flow_events.FlowStartedEvent,
        flow_events.FlowFinishedEvent,
        flow_events.MethodExecutionStartedEvent,
        crew_events.CrewKickoffStartedEvent,
        crew_events.CrewKickoffCompletedEvent,
        crew_events.CrewKickoffFailedEvent,
        agent_events.LiteAgentExecutionStartedEvent,
        agent_events.LiteAgentExecutionCompletedEvent,
        agent_events.LiteAgentExecutionErrorEvent,
        task_events.TaskStartedEvent,
        task_events.TaskCompletedEvent,
        task_events.TaskFailedEvent,
        agent_events.AgentExecutionStartedEvent,
        agent_events.AgentExecutionCompletedEvent,
        agent_events.AgentExecutionErrorEvent,
        llm_events.LLMCallStartedEvent,
        llm_events.LLMCallCompletedEvent,
        llm_events.LLMCallFailedEvent,
        tools.ToolUsageStartedEvent,
        tools.ToolUsageFinishedEvent,
        tools.ToolUsageErrorEvent,
    )


def activate(log: EventLog | None) -> None:
    """Send CrewAI's events to ``log`` (``None`` stops collecting).

    Missing handlers are registered again every time a log is activated: a project's fixture
    may have cleared the bus since (CrewAI's own test suite does after every test).
    """
    global _active
    with _active_lock:
        if log is not None:
            from crewai.events import crewai_event_bus

            registered = getattr(crewai_event_bus, "_sync_handlers", None)
            for event_class in _event_classes():
                # Registering takes the bus's write lock and drops its plans: only when missing.
                if not isinstance(registered, dict) or _collect not in registered.get(event_class, ()):
                    crewai_event_bus.on(event_class)(_collect)
        _active = log


def seen_start(kickoff: str) -> bool:
    """Whether crewguard saw the kickoff ``kickoff`` start, in this test or an earlier one."""
    with _kickoffs_lock:
        return kickoff in _kickoffs_seen


def flush(timeout: float = 10.0) -> None:
    """Wait until CrewAI's event handlers have run (only if crewai is loaded)."""
    import sys

    module = sys.modules.get("crewai.events.event_bus")
    bus = getattr(module, "crewai_event_bus", None)
    if bus is not None:
        bus.flush(timeout=timeout)


def reset_scope() -> None:
    """Start the calling thread with an empty CrewAI event scope.

    A kickoff that ends in an exception CrewAI does not expect (a cassette miss, a timeout)
    leaves its scopes on the thread's stack; without this, the next test's crew would run
    "inside" the previous test's kickoff.
    """
    import sys

    module = sys.modules.get("crewai.events.event_context")
    if module is not None:
        module.restore_event_scope(())
        module.reset_last_event_id()
