"""The JSON bodies a scripted reply is answered with, as OpenAI's and Anthropic's APIs send them.

A reply is built once as the plain response; :mod:`.streams` cuts that same response into a
stream when the client asks for one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .script import ReceivedRequest, Reply

__all__ = ["Answer", "anthropic_message", "embeddings", "error", "json_answer", "openai_completion"]

Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


def json_answer(status: int, payload: dict[str, Any]) -> Answer:
    return status, {"content-type": "application/json"}, json.dumps(payload).encode()


def error(reply: Reply) -> Answer:
    status, headers, body = json_answer(
        reply.status,
        {"error": {"message": reply.text or "scripted error", "type": "scripted_error"}},
    )
    if reply.status == 429:
        headers["retry-after"] = "0"
    return status, headers, body


def _openai_usage(reply: Reply) -> dict[str, Any]:
    return {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
        "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
    }


def openai_completion(request: ReceivedRequest, reply: Reply, n: int) -> dict[str, Any]:
    """A chat completion; ``n`` makes its ids unique."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for i, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-scripted-{n}",
        "object": "chat.completion",
        "created": 1_750_000_000,
        "model": reply.model or request.body.get("model", "gpt-4o-mini"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
            }
        ],
        "usage": _openai_usage(reply),
    }


def anthropic_message(request: ReceivedRequest, reply: Reply, n: int) -> dict[str, Any]:
    """An Anthropic message; ``n`` makes its ids unique."""
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for i, call in enumerate(reply.tool_calls):
        tool_use = {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": call.name, "input": call.arguments}
        content.append(tool_use)
    return {
        "id": f"msg_scripted_{n}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or request.body.get("model", "claude-haiku-4-5"),
        "content": content,
        "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cache_read_input_tokens": reply.cached_tokens,
            "cache_creation_input_tokens": 0,
        },
    }


def embeddings(request: ReceivedRequest, dims: int) -> Answer:
    """Deterministic vectors derived from each input text."""
    inputs = request.body.get("input", [])
    texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
    tokens = sum(len(t.split()) for t in texts)
    return json_answer(
        200,
        {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": _embedding(t, dims)}
                for i, t in enumerate(texts)
            ],
            "model": request.body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        },
    )


def _embedding(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % len(digest)] + i) % 251) / 251.0 - 0.5 for i in range(dims)]
