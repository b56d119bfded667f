"""How replay scales with the size of a cassette: crewguard beside plain vcrpy.

Writes cassettes of 10, 1,000 and 10,000 OpenAI chat-completion interactions (same URL, a
different prompt in each body, as a long crew's cassette holds), then, interleaved round by
round (the order rotating), measures for crewguard (``vcr_setup.cassette`` in replay mode,
its default matchers: method, URL, normalised body) and for plain vcrpy (``vcr.use_cassette``,
record mode ``none``, its default matchers: method and URL parts, body-blind):

- load: entering the cassette (reading and parsing the file, preparing the interactions);
- load again: entering it a second time in the same process (a cassette shared by tests);
- one request: the last recorded request, sent once through httpx;
- full replay: every recorded request sent in recorded order (1,000 interactions at most:
  plain vcrpy needs minutes for 10,000).

Prints medians and the per-round ratio crewguard / vcrpy (median of the rounds' ratios).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cassette_matching.py [--rounds 5] [--sizes 10,1000,10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

URL = "https://api.openai.com/v1/chat/completions"
FULL_REPLAY_MAX = 1000


def request_body(i: int) -> str:
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a careful researcher. " * 8},
                {"role": "user", "content": f"Step {i}: summarise finding number {i} in one line."},
            ],
            "temperature": 0.2,
            "stream": False,
        },
        separators=(",", ":"),
    )


def response_body(i: int) -> str:
    return json.dumps(
        {
            "id": f"chatcmpl-{i}",
            "object": "chat.completion",
            "created": 1700000000 + i,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"Finding {i} holds."}}],
            "usage": {"prompt_tokens": 60, "completion_tokens": 5, "total_tokens": 65},
        },
        separators=(",", ":"),
    )


def write_cassette(path: Path, n: int) -> None:
    interactions = [
        {
            "request": {
                "method": "POST",
                "uri": URL,
                "body": request_body(i),
                "headers": {"content-type": ["application/json"], "accept": ["application/json"]},
            },
            "response": {
                "status": {"code": 200, "message": "OK"},
                "headers": {"content-type": ["application/json"]},
                "body": {"string": response_body(i)},
            },
        }
        for i in range(n)
    ]
    # Written as crewguard records (JSON bodies double-quoted, broken at their structure);
    # plain vcrpy reads the same file to the same strings.
    from pytest_crewguard.cassette_yaml import ReadableYamlSerializer

    path.write_text(ReadableYamlSerializer.serialize({"version": 1, "interactions": interactions}))


def send(client: httpx.Client, i: int, exact: bool = True) -> None:
    reply = client.post(URL, content=request_body(i).encode(), headers={"content-type": "application/json"})
    if reply.status_code != 200 or (exact and f"Finding {i} holds" not in reply.text):
        raise SystemExit(f"wrong answer to request {i}: {reply.status_code} {reply.text[:200]}")


def forget_parsed() -> None:
    """Drop crewguard's parsed cassettes: the next load is the session's first."""
    from pytest_crewguard import persister

    persister._PARSED.clear()


def crewguard_opener(path: Path) -> Any:
    from pytest_crewguard import vcr_setup

    return vcr_setup.cassette(path, "none")


def vcrpy_opener(path: Path) -> Any:
    import vcr

    # vcrpy's default matchers (what pytest-recording users get): body-blind, so requests to
    # one URL are answered in recorded order. With its ``body`` matcher added, plain vcrpy
    # parses both JSON bodies per comparison: minutes for 1,000 interactions.
    return vcr.VCR(record_mode="none").use_cassette(str(path))


def measure(opener: Callable[..., Any], path: Path, n: int) -> dict[str, float]:
    """load, load again (same process), one request (the last recorded), full replay (when
    n <= FULL_REPLAY_MAX), in seconds."""
    out: dict[str, float] = {}
    with httpx.Client() as client:
        forget_parsed()  # (outside the timing: freeing a large parsed cassette takes a while)
        gc.collect()
        started = time.perf_counter()
        context = opener(path)
        context.__enter__()
        out["load"] = time.perf_counter() - started
        context.__exit__(None, None, None)
        gc.collect()
        started = time.perf_counter()
        context = opener(path)
        context.__enter__()
        try:
            out["load again"] = time.perf_counter() - started
            started = time.perf_counter()
            # Body-blind, plain vcrpy answers it with the first recording: its semantics.
            send(client, n - 1, exact=opener is crewguard_opener)
            out["one request"] = time.perf_counter() - started
        finally:
            context.__exit__(None, None, None)
        if n <= FULL_REPLAY_MAX:
            gc.collect()
            context = opener(path)
            context.__enter__()
            try:
                started = time.perf_counter()
                for i in range(n):
                    send(client, i)
                out["full replay"] = time.perf_counter() - started
            finally:
                context.__exit__(None, None, None)
    return out


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10,1000,10000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    variants = {"crewguard": crewguard_opener, "vcrpy": vcrpy_opener}
    with tempfile.TemporaryDirectory(prefix="crewguard-bench-") as tmp:
        paths = {n: Path(tmp) / f"cassette_{n}.yaml" for n in sizes}
        for n, path in paths.items():
            write_cassette(path, n)
        # Warm-up: imports, first-use caches.
        for opener in variants.values():
            measure(opener, paths[sizes[0]], sizes[0])
        results: dict[tuple[int, str], list[dict[str, float]]] = {}
        for round_no in range(args.rounds):
            for n in sizes:
                order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
                for name in order:
                    results.setdefault((n, name), []).append(measure(variants[name], paths[n], n))
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    print(f"{args.rounds} interleaved rounds; median (ratio crewguard/vcrpy: median of per-round ratios)")
    print("| interactions | measure | crewguard | plain vcrpy | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for n in sizes:
        ours, theirs = results[(n, "crewguard")], results[(n, "vcrpy")]
        for what in ours[0]:
            a = [r[what] for r in ours]
            b = [r[what] for r in theirs]
            ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
            mine, plain = fmt(statistics.median(a)), fmt(statistics.median(b))
            print(f"| {n:,} | {what} | {mine} | {plain} | {ratio:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
