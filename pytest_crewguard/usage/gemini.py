"""Google Gemini ``generateContent``/``streamGenerateContent`` and Vertex AI embeddings."""

from __future__ import annotations

from typing import Any

from .decoding import dicts, fold_chunks
from .types import Usage, count, has_any, main_counts


def fold_generate(chunks: list[Any]) -> dict[str, Any]:
    """Every stream chunk may carry ``usageMetadata``; the last one has the totals, and only a
    stream that got to a ``finishReason`` has its last one (cut off earlier: no usage)."""
    folded = fold_chunks(chunks, "usageMetadata")
    if not any(_finished(chunk) for chunk in dicts(chunks)):
        folded.pop("usageMetadata", None)
    return folded


def _finished(chunk: dict[str, Any]) -> bool:
    candidates = chunk.get("candidates")
    return isinstance(candidates, list) and any(
        isinstance(c, dict) and c.get("finishReason") for c in candidates
    )


def generate_usage(data: Any) -> Usage | None:
    """``promptTokenCount`` includes ``cachedContentTokenCount``; ``candidatesTokenCount``
    excludes thoughts (``thoughtsTokenCount``), which are billed as output and added here.
    Tool-use prompt tokens are input too."""
    block = data.get("usageMetadata") if isinstance(data, dict) else None
    if not isinstance(block, dict) or not has_any(
        block, "promptTokenCount", "candidatesTokenCount", "totalTokenCount"
    ):
        return None
    counts = main_counts(block, "promptTokenCount", "candidatesTokenCount")
    if counts is None:
        return None
    thoughts = count(block, "thoughtsTokenCount")
    input_tokens = counts[0] + count(block, "toolUsePromptTokenCount")
    output_tokens = counts[1] + thoughts
    if "candidatesTokenCount" not in block:  # some models report only the total
        output_tokens = max(output_tokens, count(block, "totalTokenCount") - input_tokens)
    return Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_tokens=count(block, "cachedContentTokenCount"),
        reasoning_tokens=thoughts,
        input_audio_tokens=_audio(block, "promptTokensDetails"),
        cached_audio_tokens=_audio(block, "cacheTokensDetails"),
        output_audio_tokens=_audio(block, "candidatesTokensDetails"),
        web_searches=_grounded(data),
    )


def _audio(block: dict[str, Any], details: str) -> int:
    """The ``AUDIO`` part of a count split by modality (audio input costs more than text)."""
    parts = block.get(details)
    if not isinstance(parts, list):
        return 0
    return sum(count(p, "tokenCount") for p in parts if isinstance(p, dict) and p.get("modality") == "AUDIO")


def _grounded(data: dict[str, Any]) -> int:
    """1 when the answer was grounded in Google Search (billed per grounded prompt)."""
    candidates = data.get("candidates")
    for candidate in candidates if isinstance(candidates, list) else []:
        grounding = candidate.get("groundingMetadata") if isinstance(candidate, dict) else None
        if isinstance(grounding, dict) and grounding.get("webSearchQueries"):
            return 1
    return 0


def vertex_embeddings_usage(data: Any) -> Usage | None:
    """Vertex AI ``:predict`` embeddings report tokens per instance."""
    predictions = data.get("predictions") if isinstance(data, dict) else None
    if not isinstance(predictions, list):
        return None
    counts = [
        count(p, "embeddings", "statistics", "token_count")
        for p in predictions
        if isinstance(p, dict) and isinstance(p.get("embeddings"), dict)
    ]
    return Usage(input_tokens=sum(counts), output_tokens=0) if counts else None
