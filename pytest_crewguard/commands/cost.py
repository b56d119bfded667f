"""``crewguard cost PATH...``: what cassettes cost, from their recorded usage, offline."""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from tabulate import tabulate

from ..printable import printable
from .recorded import PRICES_HELP, RecordedCall, analyse, cassette_files, load, money, price_table
from .show import totals

NAME = "cost"
HELP = "estimate what cassettes (or folders of them) cost, from their recorded usage, offline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="cassette files or folders of them")
    parser.add_argument("--json", action="store_true", help="print JSON for tools instead of tables")
    parser.add_argument("--prices", metavar="FILE", help=PRICES_HELP)


def _by_model(calls: list[RecordedCall]) -> dict[tuple[str, str], list[RecordedCall]]:
    groups: dict[tuple[str, str], list[RecordedCall]] = defaultdict(list)
    for call in calls:
        groups[(call.exchange.provider or "-", call.exchange.model or "(unknown model)")].append(call)
    return dict(sorted(groups.items()))


def _cost_text(t: dict[str, Any]) -> str:
    if t["llm_calls"] and not t["cost_exact"] and t["cost"] == 0:
        return "unknown"
    return money(t["cost"]) + ("" if t["cost_exact"] else " (partial)")


def report(files: dict[Path, list[RecordedCall]]) -> dict[str, Any]:
    """Totals per file, per provider and model, and overall (LLM calls only)."""
    everything = [c for calls in files.values() for c in calls if c.exchange.kind == "llm"]
    return {
        "files": [{"path": str(path), **totals([c for c in calls if c.exchange.kind == "llm"])}
                  for path, calls in files.items()],
        "models": [{"provider": p, "model": m, **totals(calls)}
                   for (p, m), calls in _by_model(everything).items()],
        "total": totals(everything),
        "calls_without_usage": [
            {"path": str(path), "interaction": c.number, "model": c.exchange.model}
            for path, calls in files.items() for c in calls if c.exchange.kind == "llm" and c.usage is None
        ],
    }


def text(data: dict[str, Any]) -> str:
    """The report as tables."""
    def row(name: list[str], t: dict[str, Any]) -> list[Any]:
        return [*name, t["llm_calls"], t["input_tokens"], t["output_tokens"], _cost_text(t)]

    head = ["calls", "input tokens", "output tokens", "cost (USD)"]
    paths = [os.path.abspath(f["path"]) for f in data["files"]]
    # Names under the folder they share, so the table stays narrow; JSON keeps the paths given.
    common = os.path.commonpath([os.path.dirname(p) for p in paths]) if len(paths) > 1 else ""
    files = [row([os.path.relpath(path, common) if common else f["path"]], f)
             for path, f in zip(paths, data["files"], strict=True) if f["llm_calls"]]
    if common and not os.path.relpath(common).startswith(".."):
        common = os.path.relpath(common)
    models = [row([m["provider"], m["model"]], m) for m in data["models"]]
    title = f"cassette (in {common})" if common else "cassette"
    parts = [
        tabulate(files, headers=[title, *head]) if files else "No LLM calls in these cassettes.",
        tabulate(models, headers=["provider", "model", *head]) if models else "",
    ]
    total = data["total"]
    parts.append(f"Total: {total['llm_calls']} LLM calls in {len(data['files'])} cassettes, "
                 f"in={total['input_tokens']} out={total['output_tokens']}, cost {_cost_text(total)}")
    if total["unpriced_models"]:
        parts.append("Unpriced models (not counted, never $0): " + ", ".join(total["unpriced_models"]))
    if data["calls_without_usage"]:
        listed = [f"  {c['path']} #{c['interaction']} ({c['model'] or 'unknown model'})"
                  for c in data["calls_without_usage"]]
        parts.append("Calls without usage (not counted, never $0):\n" + "\n".join(listed))
    return "\n\n".join(p for p in parts if p)


def run(args: argparse.Namespace) -> int:
    prices = price_table(args.prices)
    files = {path: analyse(load(path), prices) for path in cassette_files(args.paths)}
    data = report(files)
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else printable(text(data)))
    return 0
