"""Ollama's native API, ``/api/chat`` and ``/api/generate``: the final object (``done: true``,
the last line of an NDJSON stream) carries ``prompt_eval_count`` and ``eval_count``."""

from __future__ import annotations

from typing import Any

from .decoding import dicts
from .types import Usage, has_any, main_counts


def fold_stream(chunks: list[Any]) -> dict[str, Any]:
    """The first model name and the counts of the last chunk that has them."""
    folded: dict[str, Any] = {}
    for chunk in dicts(chunks):
        if isinstance(chunk.get("model"), str):
            folded.setdefault("model", chunk["model"])
        if has_any(chunk, "prompt_eval_count", "eval_count"):
            folded.update({k: chunk[k] for k in ("prompt_eval_count", "eval_count") if k in chunk})
    return folded


def native_usage(data: Any) -> Usage | None:
    """Ollama omits ``prompt_eval_count`` when the whole prompt came from its cache: 0 then."""
    if not isinstance(data, dict) or not has_any(data, "prompt_eval_count", "eval_count"):
        return None
    counts = main_counts(data, "prompt_eval_count", "eval_count")
    return None if counts is None else Usage(input_tokens=counts[0], output_tokens=counts[1])
