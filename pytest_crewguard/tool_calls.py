"""The tool calls of a run, as CrewAI's tool events reported them, and who delegated to whom.

CrewAI emits ``tool_usage_started`` when an agent's tool round begins and then either
``tool_usage_finished`` (with the text fed back to the model) or ``tool_usage_error`` (the tool
raised; the model is told "Error executing tool: ..." and the crew carries on). Each pair
becomes one :class:`ToolInvocation`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .events import CrewEvent

# CrewAI's delegation tools, by the sanitized name its executor reports.
DELEGATION_TOOLS = frozenset({"delegate_work_to_coworker", "ask_question_to_coworker"})
_SHORT = 80  # characters of an argument or result shown in a message


def tool_key(name: str | None) -> str:
    """A tool name as CrewAI sends it to the model (``"Delegate work to coworker"`` and
    ``delegate_work_to_coworker`` are the same tool): lower case, ``[a-z0-9_]`` only."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name or "").lower()
    return re.sub(r"[^a-z0-9]+", "_", text.replace("'", "").replace('"', "")).strip("_")


def short(value: Any, limit: int = _SHORT) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages."""
    text = value if isinstance(value, str) and not isinstance(value, re.Pattern) else None
    shown = repr(text) if text is not None else repr(value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


@dataclass(frozen=True)
class ToolInvocation:
    """One tool call an agent made.

    ``error`` is the exception text (``"ValueError: ..."``) when the tool raised; CrewAI then
    fed ``"Error executing tool: ..."`` back to the model and went on. ``cached`` says CrewAI's
    tool cache answered instead of the tool. ``llm_call`` is the index, in the run's
    :attr:`~pytest_crewguard.run.GuardedRun.calls`, of the LLM call that asked for it.
    """

    agent: str | None
    task: str | None
    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    result: str | None = None
    error: str | None = None
    cached: bool = False
    llm_call: int | None = None

    def signature(self) -> str:
        """``tool(name='value', ...)`` with each argument shortened."""
        return f"{self.tool}({', '.join(f'{k}={short(v, 40)}' for k, v in self.args.items())})"

    def describe(self) -> str:
        """The call, by whom and on what, for failure messages."""
        return f"{self.signature()}  by agent {self.agent!r} on task {self.task!r}"


class Delegation(NamedTuple):
    """One agent handing work (or a question) to another, on a task."""

    from_agent: str | None
    to_agent: str | None
    task: str | None


def parse_args(raw: Any) -> dict[str, Any]:
    """The tool's arguments as a dict, whatever form the event carried them in."""
    if isinstance(raw, dict):
        return dict(raw)
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(raw)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    return {"input": raw}


def _ends(events: Sequence[CrewEvent]) -> dict[str, CrewEvent]:
    """Each tool start's finished or error event, by the start's id."""
    ends: dict[str, CrewEvent] = {}
    open_starts: list[CrewEvent] = []
    for event in events:
        if event.type == "tool_usage_started":
            open_starts.append(event)
            continue
        if event.type not in ("tool_usage_finished", "tool_usage_error"):
            continue
        start = next((s for s in open_starts if s.event_id == event.started_id), None)
        if start is None:  # not paired by CrewAI: the latest open start of the same tool
            start = next((s for s in reversed(open_starts) if s.tool_name == event.tool_name), None)
        if start is not None:
            open_starts.remove(start)
            ends[start.event_id] = event
    return ends


def _asking_call(
    start: CrewEvent, llm_starts: Sequence[CrewEvent], llm_ids: Sequence[str | None]
) -> int | None:
    """The index of the LLM call whose answer asked for this tool: the agent's latest before it."""
    before = [e for e in llm_starts if e.sequence < start.sequence]
    mine = [e for e in before if (e.agent_role, e.task_name) == (start.agent_role, start.task_name)]
    chosen = (mine or before)[-1:]
    if not chosen or chosen[0].event_id not in llm_ids:
        return None
    return llm_ids.index(chosen[0].event_id)


def build_tool_calls(events: Iterable[CrewEvent], llm_ids: Sequence[str | None] = ()) -> list[ToolInvocation]:
    """The tool calls among one run's events (in emission order).

    ``llm_ids`` are the ``llm_call_started`` event ids of the run's LLM calls, in order.
    CrewAI's native tool-calling path does not set ``from_cache`` on its events, so a call is
    also taken as cached when the same tool with the same arguments already succeeded through
    the same tool cache (the cache CrewAI keys by tool name and argument JSON).
    """
    ordered = sorted(events, key=lambda e: e.sequence)
    ends = _ends(ordered)
    llm_starts = [e for e in ordered if e.type == "llm_call_started"]
    cached_keys: set[tuple[int, str, str]] = set()
    calls: list[ToolInvocation] = []
    for start in ordered:
        if start.type != "tool_usage_started":
            continue
        end = ends.get(start.event_id)
        args = parse_args(start.tool_input if start.tool_input is not None else start.tool_args)
        failed = end is not None and end.type == "tool_usage_error"
        key = None
        if start.cache_id is not None:
            key = (start.cache_id, tool_key(start.tool_name), json.dumps(args, default=str) if args else "")
        cached = bool(end and end.from_cache) or (key in cached_keys and end is not None and not failed)
        ran = end is not None and not failed and not (end.result or "").startswith("Tool not found")
        if key is not None and ran:
            cached_keys.add(key)
        error = None
        if failed and end is not None:
            error = f"{end.error_type}: {end.error}" if end.error_type else end.error or "error"
        calls.append(
            ToolInvocation(
                agent=start.agent_role,
                task=start.task_name,
                tool=start.tool_name or "",
                args=args,
                result=end.result if end is not None and not failed else None,
                error=error,
                cached=cached,
                llm_call=_asking_call(start, llm_starts, llm_ids),
            )
        )
    return calls


def _role_key(role: str) -> str:
    # CrewAI matches coworkers case-insensitively, ignoring quotes and runs of whitespace.
    return " ".join(role.replace('"', "").replace("'", "").split()).casefold()


def delegations(calls: Iterable[ToolInvocation], roles: Iterable[str] = ()) -> list[Delegation]:
    """Each successful delegation tool call, as ``(from_agent, to_agent, task)``; ``to_agent``
    is the coworker's role as the crew spells it when it is one of ``roles``."""
    known = {_role_key(r): r for r in roles}
    found: list[Delegation] = []
    for call in calls:
        if tool_key(call.tool) not in DELEGATION_TOOLS or call.error is not None:
            continue
        coworker = call.args.get("coworker")
        to_agent = known.get(_role_key(str(coworker)), str(coworker)) if coworker is not None else None
        found.append(Delegation(call.agent, to_agent, call.task))
    return found
