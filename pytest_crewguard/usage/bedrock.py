"""AWS Bedrock: Converse/ConverseStream, and InvokeModel in the model vendor's own shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .anthropic import messages_usage
from .decoding import Headers, dicts, header_value
from .types import Usage, count, has_any, main_counts


def fold_stream(chunks: list[Any]) -> dict[str, Any]:
    """ConverseStream ends with a ``metadata`` event holding ``usage``; invoke streams carry
    Anthropic's events (base64-wrapped) and ``amazon-bedrock-invocationMetrics``."""
    folded: dict[str, Any] = {}
    started = ended = False  # Anthropic's events: usage is whole only after message_delta
    for payload in dicts(chunks):
        if isinstance(payload.get("amazon-bedrock-invocationMetrics"), dict):
            folded["amazon-bedrock-invocationMetrics"] = payload["amazon-bedrock-invocationMetrics"]
        if isinstance(payload.get("usage"), dict) and payload.get("type") != "message_delta":
            folded["usage"] = payload["usage"]  # ConverseStream's metadata event
        if isinstance(payload.get("message"), dict):  # Anthropic message_start via invoke
            folded.update({k: v for k, v in payload["message"].items() if k in ("model", "usage")})
            started = True
        elif payload.get("type") == "message_delta" and isinstance(payload.get("usage"), dict):
            folded["usage"] = {**folded.get("usage", {}), **payload["usage"]}
            ended = True
        elif payload.get("type") == "error":
            started, ended = True, False
            folded.pop("amazon-bedrock-invocationMetrics", None)
            break
    if started and not ended:  # cut off: message_start's output count is a placeholder
        folded.pop("usage", None)
    return folded


def converse_usage(data: Any) -> Usage | None:
    """Bedrock's ``inputTokens`` exclude cache reads and writes, like Anthropic's; one-hour
    writes are listed in ``cacheDetails`` with ``ttl: "1h"``."""
    block = data.get("usage") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not has_any(block, "inputTokens", "outputTokens"):
        return None
    counts = main_counts(block, "inputTokens", "outputTokens")
    if counts is None:
        return None
    input_tokens, output_tokens = counts
    read, write = count(block, "cacheReadInputTokens"), count(block, "cacheWriteInputTokens")
    details = block.get("cacheDetails")
    write_1h = (
        sum(count(d, "inputTokens") for d in details if isinstance(d, Mapping) and d.get("ttl") == "1h")
        if isinstance(details, list)
        else 0
    )
    return Usage(
        input_tokens=input_tokens + read + write,
        output_tokens=output_tokens,
        cached_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=min(write_1h, write),
    )


def invoke_usage(data: Any, headers: Headers) -> Usage | None:
    """InvokeModel: Anthropic bodies carry ``usage``, streams ``amazon-bedrock-invocationMetrics``,
    and the response headers carry the counts for every model."""
    if isinstance(data, dict):
        if found := messages_usage(data):
            return found
        if isinstance(data.get("inputTextTokenCount"), int):  # Titan embeddings
            return Usage(input_tokens=max(data["inputTextTokenCount"], 0), output_tokens=0)
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            read, write = (
                count(metrics, "cacheReadInputTokenCount"),
                count(metrics, "cacheWriteInputTokenCount"),
            )
            return Usage(
                input_tokens=count(metrics, "inputTokenCount") + read + write,
                output_tokens=count(metrics, "outputTokenCount"),
                cached_tokens=read,
                cache_write_tokens=write,
            )
    counts = {
        name: header_value(headers, f"x-amzn-bedrock-{name}-token-count") for name in ("input", "output")
    }
    if all(value.isdigit() and len(value) < 16 for value in counts.values()):
        return Usage(input_tokens=int(counts["input"]), output_tokens=int(counts["output"]))
    return None
