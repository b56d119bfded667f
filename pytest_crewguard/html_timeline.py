"""What the HTML report shows of each run: its tasks, tool calls and LLM calls, in order.

Built into the test's record only when ``--crewguard-html`` is given (the JSON report stays as
it was otherwise). Each LLM call keeps its prompt messages and the model's answer, read from the
request/response pair with :mod:`pytest_crewguard.commands.conversation`, scrubbed like a cassette
and folded: a report is read, not replayed, so long prompts keep their start only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .commands.conversation import Message, reply_of, request_messages
from .events import CrewEvent, EventLog
from .ledger import LLMCall
from .run import GuardedRun
from .scrubbing import scrub_body
from .secret_values import secrets_so_far
from .usage.decoding import as_text, parse_json
from .wire import HttpExchange

FOLD_AT = 2000  # characters kept of one message's text
MAX_MESSAGES = 12  # per call: the system prompt and the latest turns


def fold(text: str, limit: int = FOLD_AT) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters folded)"


def _message(message: Message) -> dict[str, Any]:
    return {
        "role": message.role,
        "text": fold(message.text),
        "tool_calls": [
            {"name": c.get("name", ""), "arguments": fold(str(c.get("arguments", "")), 500)}
            for c in message.tool_calls
        ],
    }


def conversation(exchange: HttpExchange, secrets: list[tuple[str, str]]) -> dict[str, Any]:
    """The prompt messages and the answer of one exchange, scrubbed and folded."""
    headers = exchange.response_headers or {}
    body = scrub_body(exchange.request_body, {}, secrets)
    text = as_text(body) if isinstance(body, bytes | str) else None
    messages = request_messages(parse_json(text) if text else None)
    omitted = 0
    if len(messages) > MAX_MESSAGES:  # the system prompt, then the latest turns
        omitted = len(messages) - MAX_MESSAGES
        messages = messages[:1] + messages[1 + omitted :]
    try:
        reply = reply_of(
            {"headers": headers, "body": {"string": scrub_body(exchange.response_body, headers, secrets)}}
        )
    except Exception:  # untrusted bytes: an odd body shows no answer, never a broken report
        reply = None
    return {
        "messages": [_message(m) for m in messages],
        "omitted_messages": omitted,
        "reply": _message(reply) if reply is not None else None,
    }


def _offset(event: CrewEvent | None, start: float | None) -> float | None:
    if event is None or event.timestamp is None or start is None:
        return None
    return max(event.timestamp - start, 0.0)


def _run_items(
    run: GuardedRun,
    calls: Sequence[tuple[int, LLMCall, HttpExchange]],
    events: EventLog,
    secrets: list[tuple[str, str]],
) -> list[dict[str, Any]]:
    kickoff = events.get(run.kickoff_id)
    start = kickoff.timestamp if kickoff else None
    items: list[tuple[float, dict[str, Any]]] = []
    for event in events.descendants(run.kickoff_id) if run.kickoff_id else []:
        item: dict[str, Any]
        if event.type == "task_started":
            item = {"kind": "task", "name": event.task_name, "agent": event.agent_role}
        elif event.type in ("tool_usage_started", "tool_usage_error"):
            item = {
                "kind": "tool",
                "name": event.tool_name,
                "args": fold(event.tool_args or "", 300),
                "error": fold(event.error or "failed", 300) if event.type == "tool_usage_error" else None,
                "agent": event.agent_role,
            }
        else:
            continue
        items.append((event.sequence, {**item, "local_s": _offset(event, start)}))
    last = 0.0
    for index, call, exchange in calls:
        llm_event = events.get(exchange.scope_id("llm_call_started"))
        # A call without its event (it should not happen) goes after the one before it.
        sequence = llm_event.sequence if llm_event else last + 0.5
        last = sequence
        items.append(
            (
                sequence,
                {
                    "kind": "call",
                    "call": index,
                    "latency_s": call.recorded_latency_s,
                    "local_s": _offset(llm_event, start),
                    **conversation(exchange, secrets),
                },
            )
        )
    ordered = [item for _, item in sorted(items, key=lambda pair: pair[0])]
    # The projected time axis: local time plus the recorded latency of every call before.
    shift, local = 0.0, 0.0
    for entry in ordered:
        offset = entry.pop("local_s", None)
        local = float(offset) if offset is not None else local
        entry["at_s"] = round(local + shift, 4)
        if entry["kind"] == "call":
            shift += entry["latency_s"] or 0.0
    return ordered


def timeline(
    runs: Sequence[GuardedRun], calls: Sequence[LLMCall], wire: Sequence[HttpExchange], events: EventLog
) -> list[dict[str, Any]]:
    """One entry per run: its numbers and its items (task, tool, call) in the order they ran.

    ``calls`` are the test's calls as its record holds them (a call item's ``call`` is its index
    there); ``wire`` the test's exchanges, whose LLM exchanges are those calls, in order.
    """
    exchanges = [w for w in wire if w.exchange.kind == "llm"]
    indexed = list(zip(range(len(calls)), calls, exchanges, strict=False))
    # And what the test sent by name: the request bodies here are the ones sent, not scrubbed.
    secrets = secrets_so_far()
    found = []
    for run in runs:
        mine = [t for t in indexed if run.kickoff_id is not None and t[1].kickoff_id == run.kickoff_id]
        items = _run_items(run, mine, events, secrets)
        ends = [i["at_s"] + (i.get("latency_s") or 0.0) for i in items]
        found.append(
            {
                "kickoff_id": run.kickoff_id,
                "elapsed_s": run.elapsed_s,
                "projected_s": run.projected_s,
                "span_s": max([run.projected_s or run.elapsed_s, *ends]),
                "error": fold(f"{type(run.error).__name__}: {run.error}", 500) if run.error else None,
                "items": items,
            }
        )
    return found
