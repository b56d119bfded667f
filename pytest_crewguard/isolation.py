"""Fresh CrewAI objects per run.

A ``Crew``, ``Agent`` or ``LLM`` carries state from one kickoff to the next (retry budgets,
token and RPM counters, caches, memory), so a run that reuses one depends on who ran before.
The registry remembers every such object a guarded kickoff used, for the whole session.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import Any


class ReusedObjectError(AssertionError):
    """A kickoff was handed a CrewAI object that an earlier run already used."""


@dataclass(frozen=True)
class _Use:
    description: str
    nodeid: str
    ref: Any


def _model(llm: Any) -> str | None:
    if isinstance(llm, str):
        return llm
    model = getattr(llm, "model", None)
    return model if isinstance(model, str) and model else None


def _kind(obj: Any) -> str:
    # CrewAI's LLM() returns a provider class (OpenAICompletion, ...); users wrote "LLM".
    if hasattr(obj, "agents") and hasattr(obj, "tasks"):
        return "Crew"
    if hasattr(obj, "role"):
        return "Agent"
    if hasattr(obj, "model") and callable(getattr(obj, "call", None)):
        return "LLM"
    return type(obj).__name__


def describe(obj: Any) -> str:
    """``Agent 'Researcher' (model gpt-4o-mini)``, ``LLM 'gpt-4o-mini'``, ``Crew 'crew'``."""
    kind = _kind(obj)
    for attr in ("role", "model", "name"):
        value = getattr(obj, attr, None)
        if isinstance(value, str) and value:
            model = _model(getattr(obj, "llm", None)) if attr == "role" else None
            return f"{kind} {value!r}" + (f" (model {model})" if model else "")
    return kind


# Fields holding objects that carry state across kickoffs: LLMs, a memory or knowledge store
# built once (``memory=Memory(...)`` at module level keeps one test's memories for the next).
_CREW_FIELDS = ("manager_llm", "function_calling_llm", "planning_llm", "chat_llm", "memory", "knowledge")
_AGENT_FIELDS = ("llm", "function_calling_llm", "memory", "knowledge")


def crew_parts(crew: Any) -> list[Any]:
    """The crew, its agents (the manager and task agents too), their LLMs and the memory and
    knowledge stores they were given: the objects that carry state across kickoffs."""
    parts: list[Any] = [crew]
    agents = list(getattr(crew, "agents", None) or [])
    manager = getattr(crew, "manager_agent", None)
    agents += [manager] if manager is not None else []
    agents += [getattr(task, "agent", None) for task in getattr(crew, "tasks", None) or []]
    seen: set[int] = {id(crew)}
    for agent in agents:
        if agent is not None and id(agent) not in seen:
            seen.add(id(agent))
            parts.append(agent)
            parts += _stateful(agent, _AGENT_FIELDS, seen)
    parts += _stateful(crew, _CREW_FIELDS, seen)
    return parts


def _stateful(owner: Any, names: tuple[str, ...], seen: set[int]) -> list[Any]:
    found = []
    fields = getattr(owner, "__dict__", {})
    for attr in names:
        # From __dict__ when there: reading a deprecated field as an attribute warns.
        value = fields[attr] if attr in fields else getattr(owner, attr, None)
        # A model name, or memory=True (a store CrewAI builds for this crew), is no shared object.
        if value is None or isinstance(value, str | bool | int | float | list | dict) or id(value) in seen:
            continue
        seen.add(id(value))
        found.append(value)
    return found


class UsedObjects:
    """Session-wide record of the CrewAI objects guarded runs have used."""

    def __init__(self) -> None:
        self._uses: dict[int, _Use] = {}
        self._lock = threading.Lock()

    def claim(self, crew: Any, nodeid: str, *, again_in_test: bool = False) -> None:
        """Mark the crew's objects used by ``nodeid``; raise if any was used before, by another
        test or (unless ``again_in_test``) earlier in this one. A crew the application kicks off
        itself may run again within its test: CrewAI's own ``train``, ``test`` and ``replay`` do."""
        with self._lock:
            parts = crew_parts(crew)
            for part in parts:
                use = self._uses.get(id(part))
                if use is not None and use.ref() is part and (use.nodeid != nodeid or not again_in_test):
                    raise ReusedObjectError(self._message(use, nodeid))
            for part in parts:
                self._uses[id(part)] = _Use(describe(part), nodeid, _ref(part))

    @staticmethod
    def _message(use: _Use, nodeid: str) -> str:
        where = f"earlier in this test ({nodeid})" if use.nodeid == nodeid else f"by {use.nodeid}"
        return (
            f"crewguard: {use.description} was already used in a crew run {where}.\n"
            "  CrewAI objects keep state between kickoffs (retry budgets, token and RPM counters, "
            "caches, memory), so this run would depend on the one before.\n"
            "  Fix: create the crew, its agents, their LLMs and any memory or knowledge store anew for "
            "every run: per request in the application's own code, inside the "
            "factory you pass to crewguard.kickoff() (for a @CrewBase project, "
            "crewguard.kickoff(lambda: MyCrew().crew())), or, in a flow, inside the step that kicks "
            "the crew off. Keep none of them at module level, nor as a class attribute: "
            "`llm = LLM(...)` in a @CrewBase class body is one LLM shared by every instance; "
            "build it in the @agent method (or a function it calls) instead."
        )


def _ref(obj: Any) -> Any:
    try:
        return weakref.ref(obj)
    except TypeError:  # not weak-referenceable: keep it alive so its id is not reused
        return lambda: obj
