"""Cassettes read from disk and their interactions classified and priced, as the ledger does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CassetteError, ConfigError
from ..persister import read_interactions
from ..pricing import PriceTable
from ..usage import Exchange, Usage, classify_exchange

CASSETTE_SUFFIXES = (".yaml", ".yml")
PRICES_HELP = "price overrides (.yaml/.toml/.json), the same file the plugin takes"


class CommandError(Exception):
    """A problem to report in one line, with the exit code: 2 usage or missing file, 1 bad data."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RecordedCall:
    """One recorded interaction: what it was and, for an LLM call, its usage and cost.

    ``cost`` is ``None`` when the usage is unknown or the model has no price (never ``0.0``);
    a request the provider rejected without usage costs nothing (as in the ledger).
    """

    number: int
    interaction: dict[str, Any]
    exchange: Exchange
    status: int
    usage: Usage | None
    cost: float | None
    priced: bool

    @property
    def method(self) -> str:
        return str(self.interaction["request"]["method"])

    @property
    def uri(self) -> str:
        return str(self.interaction["request"]["uri"])


def price_table(prices: str | None) -> PriceTable:
    """The price table, with a price file's overrides (exit 2 for a bad file, as a usage error)."""
    if prices is None:
        return PriceTable()
    if not Path(prices).is_file():
        raise CommandError(f"no price file at {prices}: pass an existing .yaml, .toml or .json file", 2)
    try:
        return PriceTable.from_file(prices)
    except ConfigError as err:
        raise CommandError(str(err), 2) from err


def cassette_files(paths: Iterable[str]) -> list[Path]:
    """The cassettes named, folders searched for ``.yaml``/``.yml`` files (exit 2 if missing)."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.suffix in CASSETTE_SUFFIXES and p.is_file())
            if not inside:  # else a folder of other files would add up to $0
                raise CommandError(
                    f"no cassettes in {name}: crewguard reads the .yaml/.yml cassettes in a folder "
                    "(name a cassette of another serializer by its path to read it)", 2
                )
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"no cassette or folder at {name}: check the path", 2)
    return found


def load(path: Path) -> list[dict[str, Any]]:
    """A cassette's interactions; exit 2 when missing, 1 when it is not a readable cassette."""
    try:
        return read_interactions(path)
    except FileNotFoundError as err:
        raise CommandError(f"no cassette at {path}: check the path", 2) from err
    except CassetteError as err:
        raise CommandError(str(err), 1) from err


def analyse(interactions: list[dict[str, Any]], prices: PriceTable) -> list[RecordedCall]:
    """Classify and price each interaction (``classify_exchange``, then the price table)."""
    calls: list[RecordedCall] = []
    for number, interaction in enumerate(interactions, 1):
        request, response = interaction["request"], interaction["response"]
        status = int(response["status"]["code"])
        exchange = classify_exchange(
            request["method"], request["uri"], request.get("body"), status,
            response.get("headers") or {}, response["body"].get("string"),
        )
        usage, cost, priced = exchange.usage, None, True
        if exchange.kind == "llm":
            rejected = usage is None and status >= 400
            quote = prices.quote(exchange.provider, exchange.model)
            priced = quote is not None or rejected
            if rejected:
                usage, cost = Usage(input_tokens=0, output_tokens=0), 0.0
            elif usage is not None and quote is not None:
                cost = quote.cost(usage)
        calls.append(RecordedCall(number, interaction, exchange, status, usage, cost, priced))
    return calls


def usage_json(usage: Usage | None) -> dict[str, int] | None:
    """A usage block for ``--json`` output (``None``: the response reported none)."""
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
        "cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }


def money(cost: float | None) -> str:
    """``$0.000123`` (six decimals: one call costs fractions of a cent)."""
    return "-" if cost is None else f"${cost:.6f}"
