"""The cost of one LLM call in USD, from genai-prices' price table plus optional overrides.

The price file format is described in :mod:`pytest_crewguard.price_file`.

An override is found by the exact model name, then without a provider prefix
(``openai/gpt-4o-mini`` -> ``gpt-4o-mini``) and without a date suffix
(``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``). Overrides win over genai-prices. Ollama's
models run locally and cost nothing per token unless the file prices them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

from pytest_crewguard.price_file import ModelPrice, load_price_file
from pytest_crewguard.usage import Usage

__all__ = ["ModelPrice", "PriceTable", "Quote"]


# Providers that run the model on the user's own machine: no per-token price unless a price
# file gives one.
_LOCAL_PROVIDERS = frozenset({"ollama"})
_DATE_SUFFIX = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8})$")


class Quote(Protocol):
    """The price of one model, resolved once and reused for every call to it."""

    @property
    def free(self) -> bool:
        """The price data lists every kind of token at $0."""

    def cost(self, usage: Usage) -> float:
        """USD cost of ``usage``."""


_LOCAL = ModelPrice(input=0.0, output=0.0)


class PriceTable:
    """Prices models: overrides first, then genai-prices' bundled table (no network).

    A model's price is looked up once per ``(provider, model)`` and cached: pricing a call is
    then plain arithmetic.
    """

    def __init__(
        self,
        overrides: Mapping[str, ModelPrice] | None = None,
        source: str | None = None,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """``overrides`` maps model name to price; ``source`` names where they came from;
        ``aliases`` maps a name a provider reports (an Azure deployment) to the model it serves."""
        self._overrides: dict[str, ModelPrice] = dict(overrides or {})
        self._aliases: dict[str, str] = dict(aliases or {})
        self._source = source
        self._quotes: dict[tuple[str | None, str], Quote | None] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """A table with the overrides of a price file (format: see :mod:`pytest_crewguard.price_file`).

        Raises :class:`~pytest_crewguard.errors.ConfigError` naming the file, model and key for
        a file that cannot be read or does not follow the format.
        """
        file = Path(path)
        overrides, aliases = load_price_file(file)
        return cls(overrides, source=file.name, aliases=aliases)

    @property
    def version(self) -> str:
        """Where prices come from, e.g. ``"genai-prices 0.2.3 + overrides from prices.yaml"``."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            base = f"genai-prices {version('genai-prices')}"
        except PackageNotFoundError:
            base = "genai-prices (version unknown)"
        if self._source is not None:
            return f"{base} + overrides from {self._source}"
        if self._overrides:
            return f"{base} + {len(self._overrides)} override(s)"
        return base

    def cost(self, provider: str | None, model: str | None, usage: Usage) -> float | None:
        """USD cost of one call, rounded to 10 decimal places; ``None`` when the model has no
        price (never ``0.0`` for an unknown model, so a cost gate cannot pass by accident).
        """
        quote = self.quote(provider, model)
        return None if quote is None else quote.cost(usage)

    def is_free(self, provider: str | None, model: str | None) -> bool:
        """Whether the price data lists the model at $0 for every kind of token."""
        quote = self.quote(provider, model)
        return quote is not None and quote.free

    def quote(self, provider: str | None, model: str | None) -> Quote | None:
        """The model's price (``None``: unpriced), looked up once per ``(provider, model)``."""
        if not model:
            return None
        key = (provider, model)
        try:
            return self._quotes[key]
        except KeyError:
            pass
        found = self._lookup(provider, self._alias(provider, model))
        with self._lock:
            self._quotes[key] = found
        return found

    def model_for(self, provider: str | None, model: str) -> str:
        """The model name prices are looked up by (after ``aliases``)."""
        return self._alias(provider, model)

    def _alias(self, provider: str | None, model: str) -> str:
        if provider and f"{provider}/{model}" in self._aliases:
            return self._aliases[f"{provider}/{model}"]
        return self._aliases.get(model, model)

    def _lookup(self, provider: str | None, model: str) -> Quote | None:
        override = self._override(provider, model)
        if override is not None:
            return override
        if provider in _LOCAL_PROVIDERS:
            return _LOCAL
        from .genai_price import genai_quote  # lazy: genai-prices loads a 1.6 MB table

        return genai_quote(provider, model)

    def _override(self, provider: str | None, model: str) -> ModelPrice | None:
        if not self._overrides:
            return None
        for name in _override_names(provider, model):
            if name in self._overrides:
                return self._overrides[name]
        return None


def _override_names(provider: str | None, model: str) -> Iterator[str]:
    """Names to look an override up by, most specific first: ``provider/name`` before ``name``."""
    bare = model.rsplit("/", 1)[-1]
    names = dict.fromkeys((model, _DATE_SUFFIX.sub("", model), bare, _DATE_SUFFIX.sub("", bare)))
    if provider:
        yield from (f"{provider}/{name}" for name in names)
    yield from names


# --- price files -----------------------------------------------------------------------------
