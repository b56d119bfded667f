"""Count and price every LLM exchange of a directory of vcrpy cassettes, per provider.

Meant for CrewAI's own recordings (``lib/crewai/tests/cassettes`` of a CrewAI checkout): it
shows, per provider and API, how many exchanges crewguard recognises as LLM calls, how many
carry usage, how many of those are priced, which are rejected requests (error status, known
zero), which have unknown usage (a success without a usage block), and the unpriced models.

    .venv/bin/python benchmarks/provider_corpus.py path/to/cassettes
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import yaml

from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.usage import classify_exchange


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    prices = PriceTable()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    rows: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(collections.Counter)
    unpriced: dict[str, set[str]] = collections.defaultdict(set)
    free: dict[str, set[str]] = collections.defaultdict(set)
    files = interactions = 0
    for path in sorted(args.directory.rglob("*.yaml")):
        files += 1
        with path.open(encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=loader) or {}
        for item in data.get("interactions") or []:
            interactions += 1
            request, response = item["request"], item["response"]
            body = response.get("body")
            body = body.get("string") if isinstance(body, dict) else body
            status = response["status"]["code"]
            ex = classify_exchange(
                request["method"],
                request["uri"],
                request.get("body"),
                status,
                response.get("headers") or {},
                body,
            )
            if ex.kind != "llm":
                continue
            row = rows[(ex.provider or "-", f"{ex.api}{' (stream)' if ex.streamed else ''}")]
            row["exchanges"] += 1
            if ex.usage is None:
                row["error (known $0)" if status >= 400 else "usage unknown"] += 1
                continue
            row["with usage"] += 1
            quote = prices.quote(ex.provider, ex.model)
            if quote is None:
                unpriced[ex.provider or "-"].add(str(ex.model))
            else:
                row["priced"] += 1
                if quote.free:
                    row["free"] += 1
                    free[ex.provider or "-"].add(str(ex.model))
    columns = ["exchanges", "with usage", "priced", "free", "usage unknown", "error (known $0)"]
    print(f"{files} cassettes, {interactions} interactions; prices: {prices.version}\n")
    print(f"| provider | api | {' | '.join(columns)} |")
    print(f"| --- | --- |{' --- |' * len(columns)}")
    total: collections.Counter[str] = collections.Counter()
    for (provider, api), row in sorted(rows.items()):
        total.update(row)
        print(f"| {provider} | {api} | {' | '.join(str(row[c]) for c in columns)} |")
    print(f"| **all** | | {' | '.join(str(total[c]) for c in columns)} |")
    for provider, models in sorted(unpriced.items()):
        print(f"unpriced at {provider}: {', '.join(sorted(models))}")
    for provider, models in sorted(free.items()):
        print(f"free at {provider}: {', '.join(sorted(models))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
