"""What a cassette miss costs to explain, by cassette size and conversation length.

A miss in replay is answered at once with a stand-in error (the SDKs do not retry it), and its
message names the nearest recorded request and what changed. Choosing the nearest compares the
sent body with every recorded one; difflib's exact similarity is quadratic in a body's lines,
and a long agent conversation has thousands. Measured side by side, interleaved, on the same
requests:

- exact: every candidate scored with ``SequenceMatcher.ratio()`` (how crewguard chose before);
- crewguard: ``matching.nearest_request`` (every candidate bounded with the linear
  ``quick_ratio()``, the exact score for the best few only);
- four misses: ``miss_message`` for four different changed requests of one test, through a
  replayed cassette (the recordings' lines are made once per test).

Candidates are conversations that share most of their lines (successive turns of agents on
similar topics), the hard case for the bound. Prints medians, the ratio crewguard / exact,
and whether both chose the same recording.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/miss_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import difflib
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from vcr.request import Request

from pytest_crewguard import vcr_setup
from pytest_crewguard.cassette_yaml import ReadableYamlSerializer
from pytest_crewguard.matching import body_lines, nearest_request
from pytest_crewguard.wire import WireLog

URL = "https://api.openai.com/v1/chat/completions"
SHAPES = ((100, 20), (1000, 20), (200, 200), (50, 1000))  # (recorded requests, messages in each)


def body(conversation: int, turns: int, last: str = "") -> str:
    messages = [
        {"role": "user", "content": f"step {k} of task {conversation % 7}: " + "notes on the topic " * 8}
        for k in range(turns)
    ]
    messages.append({"role": "user", "content": last or f"conversation {conversation}"})
    return json.dumps({"model": "gpt-4o-mini", "messages": messages})


def exact_nearest(request: Any, candidates: list[Any]) -> Any:
    """The reference: the exact ratio for every candidate (endpoints are all the same here)."""
    mine = body_lines(request.body)
    best: tuple[float, Any] | None = None
    for candidate in candidates:
        score = difflib.SequenceMatcher(None, mine, body_lines(candidate.body)).ratio()
        if best is None or score > best[0]:
            best = (score, candidate)
    return best[1] if best else None


def timed(call: Any, *args: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call(*args)
    return time.perf_counter() - started, result


def four_misses(path: Path, turns: int) -> None:
    with vcr_setup.cassette(path, "none") as cassette:
        wire = WireLog(cassette, nodeid="t.py::test_x", record_mode="none", cassette_path=path.name,
                       cassette_exists=True)
        cassette.wire = wire
        for n in range(4):
            cassette.play_response(Request("POST", URL, body(3 + n, turns, f"changed {n}"), {}))
    assert len(wire.misses) == 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="crewguard-miss-"))
    print(f"{'recorded x messages':>20}{'exact ms':>12}{'crewguard ms':>14}{'ratio':>8}{'same':>6}"
          f"{'4 misses ms':>13}")
    for count, turns in SHAPES:
        recorded = [Request("POST", URL, body(i, turns), {}) for i in range(count)]
        live = Request("POST", URL, body(count // 2, turns, "a changed last message"), {})
        path = folder / f"c{count}x{turns}.yaml"
        interactions = [
            {"request": {"method": "POST", "uri": URL, "body": r.body, "headers": {}},
             "response": {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": {"string": "{}"}}}
            for r in recorded
        ]
        path.write_text(ReadableYamlSerializer.serialize({"version": 1, "interactions": interactions}))
        exact, ours, ratios, misses, same = [], [], [], [], True
        for r in range(args.rounds):
            order = ("exact", "crewguard") if r % 2 == 0 else ("crewguard", "exact")
            took: dict[str, float] = {}
            chosen: dict[str, Any] = {}
            for variant in order:
                finder = exact_nearest if variant == "exact" else nearest_request
                took[variant], chosen[variant] = timed(finder, live, recorded)
            same = same and chosen["exact"] is chosen["crewguard"]
            exact.append(took["exact"])
            ours.append(took["crewguard"])
            ratios.append(took["crewguard"] / took["exact"])
            misses.append(timed(four_misses, path, turns)[0])
        print(f"{f'{count} x {turns}':>20}{statistics.median(exact) * 1000:>12.1f}"
              f"{statistics.median(ours) * 1000:>14.1f}{statistics.median(ratios):>8.3f}"
              f"{'yes' if same else 'no':>6}{statistics.median(misses) * 1000:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
