"""The crews and agents a flow kicks off, collected so they can be claimed for the test.

A flow builds its crews inside its steps, out of crewguard's reach; CrewAI's kickoff start
events carry the object itself, which is how a crew or agent kept at module level (or an LLM
kept as a class attribute) is found and refused when a second run uses it again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Kicked:
    """The crews and agents a flow kicked off, collected from CrewAI's start events."""

    objects: list[Any] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, source: Any, event: Any) -> None:
        with self.lock:
            if all(o is not source for o in self.objects):
                self.objects.append(source)


collector: Kicked | None = None


def _on_kickoff(source: Any, event: Any) -> None:
    active = collector
    if active is not None and source is not None:
        active.add(source, event)


def listen() -> None:
    from crewai.events import crewai_event_bus
    from crewai.events.types import agent_events, crew_events

    # Registered at every flow kickoff: a project's fixture may have cleared the bus.
    crewai_event_bus.on(crew_events.CrewKickoffStartedEvent)(_on_kickoff)
    crewai_event_bus.on(agent_events.LiteAgentExecutionStartedEvent)(_on_kickoff)


class AgentParts:
    """An ``Agent.kickoff()``'s agent seen as a one-agent crew, to claim it and its LLMs."""

    def __init__(self, agent: Any) -> None:
        self.agents = [agent]
        self.tasks: list[Any] = []


def start() -> Kicked:
    """Collect what is kicked off from now on (one flow run at a time)."""
    global collector
    listen()
    kicked = Kicked()
    collector = kicked
    return kicked


def stop() -> None:
    global collector
    collector = None


def parts(obj: Any) -> Any:
    """What to claim for a kicked-off object: a crew itself, an agent as a one-agent crew."""
    return obj if hasattr(obj, "agents") else AgentParts(obj)
