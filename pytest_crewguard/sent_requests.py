"""What each run of a repeated test sent: the texts of its requests and of the answers it got.

Requests are keyed by where in the crew they were sent (agent, task, tool) so that
:mod:`pytest_crewguard.leaks` can pair a later run's requests with run 1's. Tool call ids,
UUIDs and timestamps differ between any two runs and are canonicalised here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .events import EventLog
from .matching import normalised_body
from .wire import HttpExchange

ID_KEYS = frozenset({"id", "tool_call_id", "tool_use_id", "call_id"})
RESPONSE_TEXT_KEYS = frozenset({"content", "text", "arguments", "partial_json", "thinking", "input"})
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b")


@dataclass(frozen=True)
class Text:
    """One string of a request body, where it is, and the role of its message."""

    path: str
    text: str
    role: str | None
    dynamic: bool  # a tool result or a follow-up message, not the prompt the crew started with


@dataclass(frozen=True)
class SentRequest:
    """One provider exchange of a run, reduced to its text."""

    kind: str  # "LLM call" or "embeddings request"
    number: int  # 1-based, per kind, in the order the run sent them
    key: tuple[str, ...]  # where in the crew it was sent (task, agent, ...), for pairing runs
    label: str
    request: tuple[Text, ...]
    response: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.kind} {self.number}" + (f" ({self.label})" if self.label else "")


# -- reducing wire calls to text ---------------------------------------------------------------


def _scrub(text: str) -> str:
    return _TIMESTAMP.sub("<time>", _UUID.sub("<uuid>", text))


def _canonical_ids(value: Any, seen: dict[str, str]) -> Any:
    """Ids echoed from responses (tool call ids) replaced by their order of appearance."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ID_KEYS and isinstance(item, str):
                out[key] = seen.setdefault(item, f"<id{len(seen) + 1}>")
            else:
                out[key] = _canonical_ids(item, seen)
        return out
    if isinstance(value, list):
        return [_canonical_ids(item, seen) for item in value]
    return value


def _walk(
    value: Any, path: str, role: str | None, message: int | None
) -> Iterator[tuple[str, str, str | None, int | None]]:
    if isinstance(value, dict):
        if isinstance(value.get("role"), str):
            role = value["role"]
        if value.get("type") in ("tool_result", "function_call_output"):
            role = "tool"
        for key in sorted(value):
            yield from _walk(value[key], f"{path}.{key}" if path else key, role, message)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inner = index if path in ("messages", "input", "contents") else message
            yield from _walk(item, f"{path}[{index}]", role, inner)
    elif isinstance(value, str):
        yield path, value, role, message
    elif value is not None:
        yield path, json.dumps(value), role, message


def request_texts(body: Any) -> tuple[Text, ...]:
    """The strings of a request body, ids canonical, UUIDs and timestamps masked."""
    data = normalised_body(body)
    if data is None:
        return ()
    if not isinstance(data, (dict, list)):
        return (Text("body", _scrub(str(data)), None, False),)
    data = _canonical_ids(data, {})
    if isinstance(data, dict) and isinstance(data.get("system"), (str, list)):
        data = {**data, "system": {"role": "system", "content": data["system"]}}
    texts = list(_walk(data, "", None, None))
    first_user = min((m for _, _, role, m in texts if role == "user" and m is not None), default=None)
    return tuple(
        Text(
            re.sub(r"^system\.content", "system", path),
            _scrub(text),
            role,
            role == "tool" or (role == "user" and message is not None and message != first_user),
        )
        for path, text, role, message in texts
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _response_strings(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ID_KEYS:
                continue
            if key == "input" and isinstance(item, dict):  # Anthropic tool_use arguments
                found.append(json.dumps(item, sort_keys=True))
            elif isinstance(item, str):
                if key in RESPONSE_TEXT_KEYS and item:
                    found.append(item)
            else:
                _response_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _response_strings(item, found)


def response_texts(body: Any) -> tuple[str, ...]:
    """What the provider produced: answer text and tool call arguments (streams joined)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        return ()
    head = body.lstrip()[:6]
    found: list[str] = []
    if head.startswith(("data:", "event:")):
        for line in body.splitlines():
            if line.startswith("data:"):
                _response_strings(_json_or_none(line[5:].strip()), found)
        return (_scrub("".join(found)),) if found else ()
    _response_strings(_json_or_none(body), found)
    return tuple(_scrub(text) for text in found)


def _scope_key(wire: HttpExchange, events: EventLog) -> tuple[tuple[str, ...], str]:
    key: list[str] = []
    agent = task = None
    for event_id, kind in wire.scope:
        if kind == "crew_kickoff_started":
            continue
        event = events.get(event_id)
        if kind == "task_started":
            task = event.task_name if event else None
            key.append(f"task:{task}")
        elif kind == "agent_execution_started":
            agent = event.agent_role if event else None
            key.append(f"agent:{agent}")
        else:
            key.append(kind)
    label = " / ".join(x for x in (agent, task) if x)
    return tuple(key), label


def run_calls(wire_calls: Sequence[HttpExchange], events: EventLog) -> list[SentRequest]:
    """The LLM calls and embedding requests of one run, in the order they were sent."""
    calls: list[SentRequest] = []
    numbers: Counter[str] = Counter()
    for wire in wire_calls:
        if wire.exchange.kind == "llm":
            kind = "LLM call"
        elif wire.exchange.kind == "embedding":
            kind = "embeddings request"
        else:
            continue
        numbers[kind] += 1
        scope, label = _scope_key(wire, events)
        request = request_texts(wire.request_body)
        # Calls made in the same place can still be different kinds of call (CrewAI memory
        # files, analyses and consolidates in one scope); their system prompts tell them apart.
        system = next((t.text for t in request if t.role == "system"), "")
        calls.append(
            SentRequest(
                kind=kind,
                number=numbers[kind],
                key=(kind, *scope, re.sub(r"\d", "0", system[:60])),
                label=label,
                request=request,
                response=response_texts(wire.response_body) if kind == "LLM call" else (),
            )
        )
    return calls


# -- comparing runs ----------------------------------------------------------------------------
