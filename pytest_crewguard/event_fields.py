"""Reading CrewAI's event objects: the fields crewguard keeps of each, whatever its type.

Called on CrewAI's handler thread for every event of a kickoff, so each read is cheap.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any


def field_of(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, without the exception pydantic raises for a field an event
    type does not have: collected on CrewAI's handler thread for every event of a kickoff."""
    fields = getattr(obj, "__dict__", None)
    if fields is not None and name in fields:
        return fields[name]
    extra = getattr(obj, "__pydantic_extra__", None)
    if extra and name in extra:
        return extra[name]
    kind: Any = type(obj)
    return getattr(obj, name, None) if _class_has(kind, name) else None


@lru_cache(maxsize=1024)
def _class_has(cls: Any, name: str) -> bool:
    """A class attribute or property called ``name`` (not an instance field)."""
    return any(name in vars(klass) for klass in cls.__mro__)


def clean(text: Any) -> str | None:
    """A role or task name as shown and used as a key: YAML folded scalars (``role: >``) end
    in a newline that CrewAI keeps; surrounding whitespace is dropped, the rest kept."""
    if text is None:
        return None
    return str(text).strip() or None


def agent_role(agent: Any) -> str | None:
    return clean(field_of(agent, "role"))


def task_name(task: Any) -> str | None:
    if task is None:
        return None
    return clean(field_of(task, "name") or field_of(task, "description"))


def lite_agent_role(event: Any) -> str | None:
    """``Agent.kickoff()`` events carry the agent as a dict, ``agent_info``."""
    info = field_of(event, "agent_info")
    return clean(info.get("role")) if isinstance(info, dict) else None


# Events whose ``output`` is kept: application kickoffs return theirs to the application only.
_OUTPUT_EVENTS = ("crew_kickoff_completed", "task_completed", "lite_agent_execution_completed")


def output_of(event: Any) -> Any:
    if event.type == "flow_finished":  # what the application's flow returned to it
        return field_of(event, "result")
    return field_of(event, "output") if event.type in _OUTPUT_EVENTS else None


def timestamp_of(event: Any) -> float | None:
    stamp = field_of(event, "timestamp")
    return float(stamp.timestamp()) if stamp is not None and hasattr(stamp, "timestamp") else None


def _copied(value: Any) -> Any:
    """A copy the application cannot change afterwards (arguments are plain JSON values)."""
    try:
        return copy.deepcopy(value)
    except Exception:  # an argument that cannot be copied is kept as its text
        return str(value)


def tool_fields(source: Any, event: Any) -> dict[str, Any]:
    if not str(event.type).startswith("tool_usage"):
        return {}
    error = field_of(event, "error")
    output = field_of(event, "output")
    cache = field_of(field_of(source, "tools_handler"), "cache")
    return {
        "tool_input": _copied(field_of(event, "tool_args")),
        "result": None if output is None else str(output)[:_RESULT_CHARS],
        "from_cache": bool(field_of(event, "from_cache")),
        "error_type": type(error).__name__ if isinstance(error, BaseException) else None,
        "cache_id": id(cache) if cache is not None else None,
    }


_RESULT_CHARS = 100_000  # a tool result kept for assertions; messages shorten it further
