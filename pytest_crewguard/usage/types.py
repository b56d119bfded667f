"""The two records every extractor produces: :class:`Usage` and :class:`Exchange`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["llm", "preflight", "embedding", "other"]


@dataclass(frozen=True)
class Usage:
    """Token usage of one call, one convention for every provider.

    ``input_tokens`` counts *all* input tokens, cache reads (``cached_tokens``) and cache writes
    (``cache_write_tokens``) included: Anthropic and Bedrock report those apart and they are
    added here. ``cache_write_1h_tokens`` is the part of the cache writes made with Anthropic's
    one-hour lifetime (priced higher than the default five minutes). ``output_tokens`` includes
    ``reasoning_tokens`` (Gemini's thoughts, reported apart, are added here).

    Priced apart when the price data lists them: the audio parts of the input, of its cache
    reads and of the output (``*_audio_tokens``, included in the counts above), the web searches
    a model made on its own (``web_searches``: OpenAI's web search tool, Anthropic's server
    tool, Gemini's grounding), and the ``service_tier`` a response names (OpenAI's ``priority``
    and ``flex`` cost more and less).
    """

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    cached_audio_tokens: int = 0
    output_audio_tokens: int = 0
    web_searches: int = 0
    service_tier: str | None = None

    def __post_init__(self) -> None:
        # The parts never exceed the whole, whatever a response claims: a cache read larger than
        # the prompt would otherwise make the uncached remainder negative.
        cached = min(self.cached_tokens, self.input_tokens)
        write = min(self.cache_write_tokens, self.input_tokens - cached)
        object.__setattr__(self, "cached_tokens", cached)
        object.__setattr__(self, "cache_write_tokens", write)
        object.__setattr__(self, "cache_write_1h_tokens", min(self.cache_write_1h_tokens, write))
        object.__setattr__(self, "reasoning_tokens", min(self.reasoning_tokens, self.output_tokens))
        object.__setattr__(self, "input_audio_tokens", min(self.input_audio_tokens, self.input_tokens))
        object.__setattr__(self, "cached_audio_tokens", min(self.cached_audio_tokens, cached))
        object.__setattr__(self, "output_audio_tokens", min(self.output_audio_tokens, self.output_tokens))

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Exchange:
    """What one recorded HTTP request/response pair was.

    ``provider`` is one of ``"openai"``, ``"anthropic"``, ``"google"``, ``"azure"``,
    ``"bedrock"``, ``"openrouter"``, ``"ollama"`` (``None`` for ``kind="other"``). ``api`` is one
    of ``"chat"``, ``"completions"``, ``"responses"``, ``"messages"``, ``"generate_content"``,
    ``"converse"``, ``"invoke"``, ``"ollama_chat"``, ``"ollama_generate"``, ``"embeddings"``,
    ``"ollama_embeddings"``, ``"count_tokens"``. ``model`` comes from the response body when
    present, else from the request body or the URL. ``usage`` is ``None`` when the response
    carries no usage block (errors, preflights, a stream recorded without usage, non-LLM
    traffic).
    """

    kind: Kind
    provider: str | None
    api: str | None
    model: str | None
    usage: Usage | None
    streamed: bool


def token_count(block: Any, *path: str) -> int | None:
    """A main token count at ``path`` (input, output), which a call's cost rests on: 0 when
    absent (some OpenAI-compatible servers leave out a count they have not got), ``None`` when
    present but no plausible count (null, a string, a bool, negative, a fraction, NaN, over a
    quadrillion): such a call's usage is unknown, never 0."""
    value = block
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return 0
        value = value[key]
    if value is None:  # there, but null: as unreadable as a string
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or value < 0:
        return None
    if isinstance(value, float) and not value.is_integer():  # 738.5 tokens: not a count
        return None
    if value > 10**15:  # no call has a quadrillion tokens: a corrupt or hostile number
        return None
    return int(value)


def main_counts(block: Any, inputs: str, outputs: str) -> tuple[int, int] | None:
    """The input and output counts of a usage block, ``None`` when either is there but
    unreadable (the usage is then unknown, not 0)."""
    input_tokens, output_tokens = token_count(block, inputs), token_count(block, outputs)
    return None if input_tokens is None or output_tokens is None else (input_tokens, output_tokens)


def count(block: Any, *path: str) -> int:
    """A detail count (cached, reasoning, cache writes...): 0 when absent or not a count."""
    return token_count(block, *path) or 0


def has_any(block: Mapping[str, Any], *keys: str) -> bool:
    """Whether the usage block reports at least one of ``keys``."""
    return any(key in block for key in keys)
