"""Anthropic's Messages API (also Claude on Vertex AI and Bedrock ``invoke``)."""

from __future__ import annotations

from typing import Any

from .decoding import dicts
from .types import Usage, count, has_any, main_counts


def fold_messages(chunks: list[Any]) -> dict[str, Any]:
    """``message_start`` carries the input side, every ``message_delta`` the running output
    count (newer API versions repeat input and cache counts there too): the last value wins.

    A stream cut off before its ``message_delta``, or ended by an ``error`` event (an overload
    midway, on HTTP 200), has no usage: ``message_start``'s output count is a placeholder."""
    folded: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    ended = False
    for chunk in dicts(chunks):
        if chunk.get("type") == "message_start" and isinstance(chunk.get("message"), dict):
            message = chunk["message"]
            folded["model"] = message.get("model")
            if isinstance(message.get("usage"), dict):
                usage.update(message["usage"])
        elif chunk.get("type") == "message_delta" and isinstance(chunk.get("usage"), dict):
            usage.update({k: v for k, v in chunk["usage"].items() if v is not None})
            ended = True
        elif chunk.get("type") == "error":
            ended = False
            break
    if usage and ended:
        folded["usage"] = usage
    return folded


def messages_usage(data: Any) -> Usage | None:
    """Anthropic's ``input_tokens`` exclude cache reads and writes; they are added here.

    ``cache_creation`` splits the writes by lifetime: one-hour writes cost more than the
    default five-minute ones (2x and 1.25x the input price).
    """
    block = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not has_any(block, "input_tokens", "output_tokens"):
        return None
    counts = main_counts(block, "input_tokens", "output_tokens")
    if counts is None:
        return None
    input_tokens, output_tokens = counts
    read = count(block, "cache_read_input_tokens")
    write_1h = count(block, "cache_creation", "ephemeral_1h_input_tokens")
    write = count(block, "cache_creation_input_tokens")
    if not write:  # only the split was reported
        write = count(block, "cache_creation", "ephemeral_5m_input_tokens") + write_1h
    return Usage(
        input_tokens=input_tokens + read + write,
        output_tokens=output_tokens,
        cached_tokens=read,
        reasoning_tokens=count(block, "output_tokens_details", "thinking_tokens"),
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
        web_searches=count(block, "server_tool_use", "web_search_requests"),
    )
