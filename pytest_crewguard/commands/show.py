"""``crewguard show CASSETTE``: a cassette as a conversation, call by call, with usage and cost."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..printable import printable
from .conversation import Message, reply_of, request_json, request_messages
from .recorded import PRICES_HELP, RecordedCall, analyse, load, money, price_table, usage_json

NAME = "show"
HELP = "print a cassette as a conversation: messages, tool calls, usage and cost per call"

_LINES = 3  # a long message is folded to this many lines
_WIDTH = 160


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cassette", help="the cassette file (.yaml)")
    parser.add_argument("--json", action="store_true", help="print JSON for tools instead of text")
    parser.add_argument("--full", action="store_true", help="print messages whole, not folded")
    parser.add_argument("--prices", metavar="FILE", help=PRICES_HELP)


def fold(text: str, lines: int = _LINES, width: int = _WIDTH) -> list[str]:
    """``text`` in at most ``lines`` lines of at most ``width`` characters, ``...`` where cut
    (blank lines left out)."""
    all_lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()] or [""]
    shown = [line if len(line) <= width else line[: width - 3] + "..." for line in all_lines[:lines]]
    if len(all_lines) > lines:
        shown.append(f"... ({len(all_lines) - lines} more lines)")
    return shown


def _tool_call_text(call: dict[str, Any]) -> str:
    arguments = json.dumps(call.get("arguments"), ensure_ascii=False)
    return f"{call.get('name')}({arguments})"


def _message_lines(message: Message, full: bool) -> list[str]:
    lines: list[str] = []
    if message.text:
        body = message.text.strip().splitlines() if full else fold(message.text)
        lines.append(f"  {message.role}: {body[0] if body else ''}")
        lines.extend(f"  {' ' * len(message.role)}  {line}" for line in body[1:])
    for call in message.tool_calls:
        text = _tool_call_text(call)
        lines.append(f"  {message.role} -> tool call {text if full else fold(text, 1)[0]}")
    if not lines:
        lines.append(f"  {message.role}: (empty)")
    return lines


def _usage_text(call: RecordedCall) -> str:
    usage = call.usage
    if usage is None:
        return "usage: unknown (the response had no readable usage block)"
    extra = []
    if usage.cached_tokens:
        extra.append(f"cache read {usage.cached_tokens}")
    if usage.cache_write_tokens:
        extra.append(f"cache write {usage.cache_write_tokens}")
    detail = f" ({', '.join(extra)})" if extra else ""
    reasoning = f" (reasoning {usage.reasoning_tokens})" if usage.reasoning_tokens else ""
    cost = money(call.cost) if call.priced else "unpriced model"
    return f"usage: in={usage.input_tokens}{detail} out={usage.output_tokens}{reasoning}  cost: {cost}"


def _one_line(call: RecordedCall) -> str:
    kind = call.exchange.kind
    what = {"preflight": "token-count preflight", "embedding": "embedding", "other": "not an LLM call"}[kind]
    return f"#{call.number} {what}: {call.method} {call.uri} -> {call.status}"


def text_lines(path: Path, calls: list[RecordedCall], full: bool) -> list[str]:
    """The conversation as terminal lines."""
    llm = [c for c in calls if c.exchange.kind == "llm"]
    lines = [f"{path}: {len(calls)} interactions, {len(llm)} LLM calls", ""]
    for call in calls:
        if call.exchange.kind != "llm":
            lines.append(_one_line(call))
            continue
        ex = call.exchange
        streamed = ", streamed" if ex.streamed else ""
        lines.append(f"#{call.number} {ex.provider} {ex.model or '(unknown model)'} ({ex.api}{streamed})"
                     f"  {call.method} {call.uri} -> {call.status}")
        for message in request_messages(request_json(call.interaction["request"])):
            lines.extend(_message_lines(message, full))
        reply = reply_of(call.interaction["response"])
        if reply is not None:
            shown = _message_lines(reply, full)
            lines.append(shown[0].replace("  ", "  => ", 1))
            lines.extend("   " + line for line in shown[1:])
        lines.append(f"  {_usage_text(call)}")
        lines.append("")
    lines.extend(_totals_lines(llm))
    return lines


def totals(llm: list[RecordedCall]) -> dict[str, Any]:
    """Totals over the LLM calls; unpriced models and calls without usage listed, not counted."""
    known = [c for c in llm if c.usage is not None]
    return {
        "llm_calls": len(llm),
        "input_tokens": sum(c.usage.input_tokens for c in known if c.usage),
        "output_tokens": sum(c.usage.output_tokens for c in known if c.usage),
        "cost": round(sum(c.cost for c in llm if c.cost is not None), 10),
        "cost_exact": all(c.cost is not None for c in llm),
        "unpriced_models": sorted({c.exchange.model or "(unknown model)" for c in llm if not c.priced}),
        "calls_without_usage": [c.number for c in llm if c.usage is None],
    }


def _totals_lines(llm: list[RecordedCall]) -> list[str]:
    t = totals(llm)
    lines = [f"Total: {t['llm_calls']} LLM calls, in={t['input_tokens']} out={t['output_tokens']}, "
             f"cost {money(t['cost'])}{'' if t['cost_exact'] else ' (partial)'}"]
    if t["unpriced_models"]:
        lines.append(f"  unpriced models (not counted): {', '.join(t['unpriced_models'])}")
    if t["calls_without_usage"]:
        numbers = ", ".join(f"#{n}" for n in t["calls_without_usage"])
        lines.append(f"  calls without usage (not counted): {numbers}")
    return lines


def _messages(call: RecordedCall) -> list[Message]:
    return request_messages(request_json(call.interaction["request"]))


def as_json(path: Path, calls: list[RecordedCall]) -> dict[str, Any]:
    """The cassette for tools: every interaction, and the totals."""
    items: list[dict[str, Any]] = []
    for call in calls:
        ex = call.exchange
        item: dict[str, Any] = {
            "number": call.number, "kind": ex.kind, "method": call.method, "uri": call.uri,
            "status": call.status,
        }
        if ex.kind == "llm":
            reply = reply_of(call.interaction["response"])
            item.update({
                "provider": ex.provider, "api": ex.api, "model": ex.model, "streamed": ex.streamed,
                "messages": [m.as_json() for m in _messages(call)],
                "reply": reply.as_json() if reply else None,
                "tool_calls": reply.tool_calls if reply else [],
                "usage": usage_json(call.usage), "cost": call.cost, "priced": call.priced,
            })
        items.append(item)
    return {"cassette": str(path), "interactions": items,
            "totals": totals([c for c in calls if c.exchange.kind == "llm"])}


def run(args: argparse.Namespace) -> int:
    path = Path(args.cassette)
    calls = analyse(load(path), price_table(args.prices))
    if args.json:
        print(json.dumps(as_json(path, calls), indent=2, ensure_ascii=False))
    else:
        print(printable("\n".join(text_lines(path, calls, args.full))))
    return 0
