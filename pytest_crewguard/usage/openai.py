"""OpenAI's shapes, also served by Azure OpenAI, OpenRouter and OpenAI-compatible servers:
Chat Completions (and legacy Completions), Responses, and embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .decoding import dicts, fold_chunks
from .types import Usage, count, has_any, main_counts


def fold_chat(chunks: list[Any]) -> dict[str, Any]:
    """A chat stream carries usage only in its last chunk, and only when it was requested
    with ``stream_options.include_usage``."""
    return fold_chunks(chunks, "usage")


def fold_responses(chunks: list[Any]) -> dict[str, Any]:
    """Responses streams: ``response.completed`` (or ``.incomplete``/``.failed``) carries the
    whole response, usage included."""
    folded: dict[str, Any] = {}
    for chunk in dicts(chunks):
        response = chunk.get("response")
        if isinstance(response, dict):
            if response.get("model"):
                folded["model"] = response["model"]
            if isinstance(response.get("usage"), dict):
                folded = dict(response)
    return folded


def chat_usage(data: Any) -> Usage | None:
    """``usage`` of a Chat Completions body (``prompt_tokens`` include cached tokens,
    ``completion_tokens`` include reasoning tokens)."""
    block = _block(data)
    if block is None:
        return None
    if not has_any(block, "prompt_tokens", "completion_tokens"):
        # Some OpenAI-compatible servers answer chat requests with the Responses field names.
        return responses_usage(data)
    found = _usage(block, "prompt_tokens", "completion_tokens")
    if found is None:
        return None
    return replace(
        found,
        input_audio_tokens=count(block, "prompt_tokens_details", "audio_tokens"),
        output_audio_tokens=count(block, "completion_tokens_details", "audio_tokens"),
        service_tier=_tier(data),
    )


def _tier(data: Any) -> str | None:
    """The tier a response was served in, when it costs other than the default."""
    tier = data.get("service_tier") if isinstance(data, dict) else None
    return tier if tier in ("priority", "flex") else None


def responses_usage(data: Any) -> Usage | None:
    """``usage`` of a Responses body (same inclusions as chat, other field names); each
    ``web_search_call`` in its output is a search billed apart."""
    block = _block(data)
    if block is None or not has_any(block, "input_tokens", "output_tokens"):
        return None
    found = _usage(block, "input_tokens", "output_tokens")
    if found is None:
        return None
    output = data.get("output")
    items = output if isinstance(output, list) else []
    searches = sum(1 for item in items if isinstance(item, dict) and item.get("type") == "web_search_call")
    return replace(found, web_searches=searches, service_tier=_tier(data))


def _usage(block: Mapping[str, Any], inputs: str, outputs: str) -> Usage | None:
    """Chat and Responses differ only in names: ``<inputs>`` and ``<inputs>_details`` hold the
    input and cache counts, ``<outputs>`` and ``<outputs>_details`` the output and reasoning.
    A main count that is there but unreadable leaves the usage unknown."""
    counts = main_counts(block, inputs, outputs)
    if counts is None:
        return None
    input_tokens, output_tokens = counts
    reasoning = count(block, f"{outputs}_details", "reasoning_tokens")
    if reasoning > output_tokens:
        # Output includes reasoning; a gateway that left the reasoning out of it (Gemini's
        # OpenAI-compatible route) still counts it in the total. Neither: the usage is unknown.
        output_tokens = count(block, "total_tokens") - input_tokens
        if reasoning > output_tokens:
            return None
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=count(block, f"{inputs}_details", "cached_tokens"),
        reasoning_tokens=reasoning,
        cache_write_tokens=count(block, f"{inputs}_details", "cache_write_tokens"),
    )


def embeddings_usage(data: Any) -> Usage | None:
    """Embeddings bill input tokens only."""
    block = _block(data)
    if block is None or not has_any(block, "prompt_tokens", "total_tokens"):
        return None
    return Usage(input_tokens=count(block, "prompt_tokens") or count(block, "total_tokens"), output_tokens=0)


def _block(data: Any) -> Mapping[str, Any] | None:
    block = data.get("usage") if isinstance(data, dict) else None
    return block if isinstance(block, dict) and block else None
