"""Reading a price file: model prices in USD per million tokens, checked strictly.

Price file format
-----------------
A ``.yaml``/``.yml``, ``.toml`` or ``.json`` file holding a mapping of model name to prices, in
USD per million tokens. ``input`` and ``output`` are required; ``cached_input`` (cache reads)
and ``cache_write`` default to the ``input`` price, ``cache_write_1h`` (Anthropic's one-hour
cache writes) to ``cache_write``, ``reasoning_output`` (reasoning/thinking tokens) to
``output``. YAML::

    my-finetune:
      input: 0.30        # USD per million input tokens
      cached_input: 0.15
      output: 1.20
    openai/gpt-4o-mini:  # "provider/model" prices a model for that provider only
      input: 0.15
      output: 0.60

The same mapping may sit under a top-level ``models:`` key, next to an optional ``aliases:``
mapping from a name the provider reports (an Azure OpenAI deployment name) to the model it
serves::

    aliases:
      my-gpt4o-deployment: gpt-4o   # priced as gpt-4o
    models:
      my-finetune: {input: 0.30, output: 1.20}

TOML (quote names with dots)::

    [models."gpt-4.1-mini"]
    input = 0.40
    output = 1.60

JSON: ``{"my-finetune": {"input": 0.3, "output": 1.2}}``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.usage import Usage

__all__ = ["ModelPrice", "load_price_file"]


@dataclass(frozen=True)
class ModelPrice:
    """Prices of one model in USD per million tokens; ``None`` cache prices mean the input price
    (``cache_write_1h``: the ``cache_write`` price)."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    cache_write_1h: float | None = None
    reasoning_output: float | None = None

    @property
    def free(self) -> bool:
        """Every kind of token costs nothing."""
        prices = (self.input, self.output, self.cached_input, self.cache_write, self.cache_write_1h)
        return not any((*prices, self.reasoning_output))

    def cost(self, usage: Usage) -> float:
        """USD cost of ``usage``, each kind of token at its own price."""
        # Usage.input_tokens includes cache reads and writes: bill those at their own prices.
        uncached = max(usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens, 0)
        cached_price = self.input if self.cached_input is None else self.cached_input
        write_price = self.input if self.cache_write is None else self.cache_write
        write_1h_price = write_price if self.cache_write_1h is None else self.cache_write_1h
        reasoning_price = self.output if self.reasoning_output is None else self.reasoning_output
        write_1h, reasoning = usage.cache_write_1h_tokens, usage.reasoning_tokens
        total = (
            uncached * self.input
            + usage.cached_tokens * cached_price
            + (usage.cache_write_tokens - write_1h) * write_price
            + write_1h * write_1h_price
            + (usage.output_tokens - reasoning) * self.output
            + reasoning * reasoning_price
        )
        return round(total / 1_000_000, 10)


_PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "cache_write_1h", "reasoning_output")
_OPTIONAL_KEYS = _PRICE_KEYS[2:]  # default to another price when absent or null


def load_price_file(file: Path) -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """The overrides and aliases of a price file; ``ConfigError`` naming file, model and key."""
    suffix = file.suffix.lower()
    if suffix not in (".yaml", ".yml", ".toml", ".json"):
        raise ConfigError(
            f"price file {file}: unsupported file type {suffix or '(none)'!r}; "
            "expected .yaml, .yml, .toml or .json"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"price file {file}: cannot be read: {reason}") from exc
    data, aliases = _split_aliases(file, _parse(file, suffix, text))
    if aliases and data == {}:  # a file of aliases only
        return {}, aliases
    return _parse_prices(file, data), aliases


def _split_aliases(file: Path, data: Any) -> tuple[Any, dict[str, str]]:
    """Take the top-level ``aliases:`` mapping (reported name -> model to price it as) out."""
    if not isinstance(data, dict) or "aliases" not in data:
        return data, {}
    rest = {k: v for k, v in data.items() if k != "aliases"}
    found = data["aliases"]
    example = "e.g. `aliases: {my-gpt4o-deployment: gpt-4o}`"
    if not isinstance(found, dict):
        raise ConfigError(
            f"price file {file}: 'aliases' must map a deployment or model name to the model it "
            f"serves, {example}; got {_type_name(found)}"
        )
    aliases: dict[str, str] = {}
    for name, target in found.items():
        if not isinstance(target, str) or not target.strip():
            raise ConfigError(
                f"price file {file}: alias {str(name)!r} must name a model (a string), {example}; "
                f"got {target!r}"
            )
        aliases[str(name)] = target.strip()
    if rest and "models" not in rest:  # models next to aliases must sit under 'models'
        others = ", ".join(repr(str(k)) for k in rest)
        raise ConfigError(
            f"price file {file}: with 'aliases', put the prices under a top-level 'models' key "
            f"(found {others} at the top level)"
        )
    return rest, aliases


def _unique_keys(file: Path, kind: str) -> Any:
    """A JSON ``object_pairs_hook`` that refuses a key given twice (json keeps the last one)."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            if key in mapping:
                raise ConfigError(
                    f"price file {file}: {kind} key {key!r} appears twice; a later entry would "
                    "silently replace the earlier one. Keep one entry per model."
                )
            mapping[key] = value
        return mapping

    return build


def _parse(file: Path, suffix: str, text: str) -> Any:
    if suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_keys(file, "JSON"))
        except ValueError as exc:
            raise ConfigError(f"price file {file}: not valid JSON: {exc}") from exc
    if suffix == ".toml":
        import tomllib  # refuses a key given twice itself

        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"price file {file}: not valid TOML: {exc}") from exc
    import yaml  # lazy: only needed when a YAML price file is used

    class UniqueKeyLoader(yaml.SafeLoader):
        """PyYAML keeps the last of two equal keys without a word; a price file must not."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise ConfigError(
                        f"price file {file}: key {key!r} appears twice (line "
                        f"{key_node.start_mark.line + 1}); a later entry would silently replace "
                        "the earlier one. Keep one entry per model."
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"price file {file}: not valid YAML{line}: {problem}") from exc


# USD per million tokens; a price above this is a typo, not a price.
_MAX_PRICE = 1e6


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _parse_prices(file: Path, data: Any) -> dict[str, ModelPrice]:
    example = "e.g. `my-model: {input: 0.30, output: 1.20}` (USD per million tokens)"
    if isinstance(data, dict) and "models" in data:
        if len(data) > 1:
            others = ", ".join(repr(str(k)) for k in data if k != "models")
            raise ConfigError(
                f"price file {file}: unknown top-level key(s) {others} next to 'models'; "
                "put every model under 'models'"
            )
        data = data["models"]
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            f"price file {file}: expected a mapping of model name to prices, {example}; "
            f"got {'an empty mapping' if isinstance(data, dict) else _type_name(data)}"
        )
    prices: dict[str, ModelPrice] = {}
    for name, entry in data.items():
        model = str(name)
        if not isinstance(entry, dict):
            raise ConfigError(
                f"price file {file}: model {model!r}: expected a mapping with 'input' and 'output' "
                f"prices in USD per million tokens, got {_type_name(entry)} {entry!r}"
            )
        unknown = [str(key) for key in entry if key not in _PRICE_KEYS]
        if unknown:
            raise ConfigError(
                f"price file {file}: model {model!r}: unknown key {unknown[0]!r}; "
                f"expected {', '.join(_PRICE_KEYS)}"
            )
        for key in ("input", "output"):
            if key not in entry:
                raise ConfigError(
                    f"price file {file}: model {model!r}: missing key {key!r} (USD per million {key} tokens)"
                )
        values: dict[str, float] = {}
        for key, value in entry.items():
            if value is None and key in _OPTIONAL_KEYS:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            # A 400-digit integer is a number too large for a float: refused, not a crash.
            if number and isinstance(value, int) and value > _MAX_PRICE:
                number = False
            if not number or not math.isfinite(value) or value < 0 or value > _MAX_PRICE:
                shown = repr(value)
                if len(shown) > 24:
                    shown = f"{shown[:12]}… ({len(shown)} digits)"
                raise ConfigError(
                    f"price file {file}: model {model!r}: key {key!r} must be a non-negative "
                    f"number of USD per million tokens, at most {_MAX_PRICE:g} (e.g. 0.30), got {shown}"
                )
            values[key] = float(value)
        prices[model] = ModelPrice(
            input=values["input"],
            output=values["output"],
            cached_input=values.get("cached_input"),
            cache_write=values.get("cache_write"),
            cache_write_1h=values.get("cache_write_1h"),
            reasoning_output=values.get("reasoning_output"),
        )
    return prices
