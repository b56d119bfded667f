"""Prices from genai-prices' bundled table: one model looked up once, then plain arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import genai_prices
from genai_prices.data_snapshot import find_provider_by_id, get_snapshot

from .usage import Usage

# Our provider names -> genai-prices provider ids to try, in order. Azure serves OpenAI models
# under deployment names; genai-prices knows some Azure prices and falls back to OpenAI's.
_GENAI_PROVIDERS: dict[str, tuple[str, ...]] = {
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "google": ("google",),
    "azure": ("azure", "openai"),
    "bedrock": ("aws",),
    "openrouter": ("openrouter",),
}


@dataclass(frozen=True)
class GenaiQuote:
    """A model's entry in genai-prices' table (its provider and model info)."""

    provider: Any  # genai_prices.types.Provider
    model: Any  # genai_prices.types.ModelInfo
    free: bool
    # genai-prices works a price out in about 0.1 ms; a suite replays the same usage again and
    # again (repeats, parametrised tests, one cassette per test of one crew).
    _costs: dict[Usage, float] = field(default_factory=dict, compare=False, repr=False)

    def cost(self, usage: Usage) -> float:
        """USD cost of ``usage``, each kind of token at the price the table lists for it."""
        known = self._costs.get(usage)
        if known is None:
            known = self._costs[usage] = self._price(usage)
        return known

    def _price(self, usage: Usage) -> float:
        parts = {
            "input_audio_tokens": usage.input_audio_tokens,
            "cache_audio_read_tokens": usage.cached_audio_tokens,
            "output_audio_tokens": usage.output_audio_tokens,
            "web_searches": usage.web_searches,
        }
        genai_usage = genai_prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
            output_tokens=usage.output_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
            **{name: value for name, value in parts.items() if value},
        )
        context = {"service_tier": usage.service_tier} if usage.service_tier else None
        price = self.model.calc_price(genai_usage, self.provider, price_context=context)
        return round(float(price.total_price), 10)


def genai_quote(provider: str | None, model: str) -> GenaiQuote | None:
    """The price genai-prices lists for ``model`` at ``provider`` (``None``: unknown)."""
    snapshot = get_snapshot()
    candidates: tuple[str | None, ...]
    if provider is None:
        candidates = (None,)
    elif provider in _GENAI_PROVIDERS:
        candidates = _GENAI_PROVIDERS[provider]
    elif find_provider_by_id(snapshot.providers, provider) is not None:
        candidates = (provider,)  # e.g. "groq", "mistral": genai-prices knows them by that id
    else:
        candidates = (None,)  # unknown provider: let genai-prices match the model name alone

    for provider_id in candidates:
        try:
            found_provider, info = snapshot.find_provider_model(model, None, provider_id, None)
            # Free per the price data: a million of every token kind costs nothing.
            probe = genai_prices.Usage(
                input_tokens=10**6, cache_read_tokens=0, output_tokens=10**6, cache_write_tokens=0
            )
            free = info.calc_price(probe, found_provider).total_price == 0
        except (LookupError, ValueError):  # unknown model (or usage it cannot price): unpriced
            continue
        return GenaiQuote(found_provider, info, free)
    return None
