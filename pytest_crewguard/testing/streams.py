"""A complete provider response cut into the stream the real API sends for it.

The scripted provider builds each reply once, as the plain JSON response, and streams that
same response when the client asks for a stream, so a streamed and a plain request for one
reply carry the same content and the same usage.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["CONTENT_TYPE", "anthropic_events", "openai_chunks"]

CONTENT_TYPE = "text/event-stream; charset=utf-8"


def pieces(text: str, size: int = 3) -> list[str]:
    """``text`` cut into pieces of a few words (whitespace kept), as a model streams it."""
    words = text.split(" ")
    groups = [" ".join(words[i : i + size]) for i in range(0, len(words), size)] if text else []
    return [group + " " for group in groups[:-1]] + groups[-1:]


def openai_chunks(response: dict[str, Any], *, with_usage: bool) -> list[bytes]:
    """A chat completion as ``chat.completion.chunk`` events, shaped like OpenAI's.

    The text arrives a few words per chunk, each tool call as a head (id, name) and then its
    arguments in pieces. Usage comes last, in a chunk with no choices, and only when the
    request asked for it (``stream_options.include_usage``); then every chunk carries
    ``"usage": null`` before it, as the real API does.
    """
    choice = response["choices"][0]
    base: dict[str, Any] = {k: response[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    if with_usage:
        base["usage"] = None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    text = choice["message"].get("content") or ""
    chunks = [chunk({"role": "assistant", "content": "" if text else None})]
    chunks += [chunk({"content": piece}) for piece in pieces(text)]
    for i, call in enumerate(choice["message"].get("tool_calls", [])):
        head = {"index": i, "id": call["id"], "type": "function"}
        name = call["function"]["name"]
        chunks.append(chunk({"tool_calls": [head | {"function": {"name": name, "arguments": ""}}]}))
        chunks += [
            chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
            for piece in pieces(call["function"]["arguments"])
        ]
    chunks.append(chunk({}, choice["finish_reason"]))
    if with_usage:
        chunks.append(base | {"choices": [], "usage": response["usage"]})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def anthropic_events(message: dict[str, Any]) -> list[bytes]:
    """A Messages API response as Anthropic's stream: the same events, in the same order.

    ``message_start`` carries the input side of the usage (and ``output_tokens: 1``), each
    content block comes as ``content_block_start``, deltas (``text_delta`` or
    ``input_json_delta``) and ``content_block_stop``, then ``message_delta`` with the stop
    reason and the final usage, then ``message_stop``.
    """
    usage = message["usage"]
    start = {k: v for k, v in message.items() if k != "usage"}
    start |= {"content": [], "stop_reason": None, "usage": usage | {"output_tokens": 1}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            opened = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces(block["text"])]
        else:  # tool_use: the input arrives as JSON text in pieces, the first one empty
            opened = block | {"input": {}}
            json_pieces = ["", *pieces(json.dumps(block["input"]))]
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in json_pieces]
        events.append(("content_block_start", {"index": index, "content_block": opened}))
        if index == 0:
            events.append(("ping", {}))
        events += [("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
        events.append(("content_block_stop", {"index": index}))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events += [("message_delta", {"delta": delta, "usage": usage}), ("message_stop", {})]
    return [f"event: {name}\ndata: {json.dumps({'type': name} | data)}\n\n".encode() for name, data in events]
