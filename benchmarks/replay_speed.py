"""What one kickoff of a one-call crew costs in replay, and where that time goes.

Variants, each building a fresh crew (``LLM(...)`` included) and kicking it off once:

  a  crewguard replay: ``CrewGuard`` start / kickoff / close on a cassette the plugin recorded
  b  plain vcrpy replay: ``vcr.use_cassette`` on a cassette plain vcrpy recorded
  c  live: the scripted provider on loopback, no cassette
  d  crewguard replay inside ``pytest_crewguard.tls.shared_tls_context()``

Everything runs in one process (crewai imported once), after a warm-up, with the variants
interleaved round by round (the order rotates every round) so that machine noise hits all of
them alike. Reported: median milliseconds per kickoff with the 10th..90th percentile, and
the median of the per-round ratios to variant a. Then cProfile shows how much of a kickoff
goes to building TLS contexts (ssl.create_default_context, load_verify_locations, certifi).

    .venv/bin/python benchmarks/replay_speed.py [--rounds 30] [--model gpt-4o-mini]
    .venv/bin/python benchmarks/replay_speed.py --model anthropic/claude-haiku-4-5
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib.util
import io
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from pytest_crewguard.environment import prepare_crewai_environment
from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply, ScriptedProvider

ANSWER = "AI agents plan, act and remember."
INPUTS = {"topic": "AI agents"}
NODEID = "test_crew.py::test_research"

TEST_FILE = """
import pytest
from crewai import Agent, Crew, LLM, Task

BASE_URL = {base_url!r}
MODEL = {model!r}


def make_crew():
    llm = LLM(model=MODEL, base_url=BASE_URL)
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher", llm=llm)
    task = Task(name="research", description="Research {{topic}} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


@pytest.mark.crewguard
def test_research(crewguard):
    run = crewguard.kickoff(make_crew, inputs={inputs!r})
    assert run.output.raw == {answer!r}
    assert run.llm_calls == 1
"""

# Functions whose cumulative time is the cost of building TLS contexts.
TLS_FUNCTIONS = (
    ("ssl.py", "create_default_context"),
    ("~", "<method 'load_verify_locations' of '_ssl._SSLContext' objects>"),
    ("~", "<method 'set_default_verify_paths' of '_ssl._SSLContext' objects>"),
    ("certifi/core.py", "where"),
    ("httpx/_config.py", "create_ssl_context"),
    ("httpx2/_config.py", "create_ssl_context"),
    ("httpcore2/_ssl.py", "default_ssl_context"),
)


def record_with_plugin(root: Path, base_url: str, model: str) -> Path:
    """Record the crew's cassette the way a user would: a pytest run in record mode."""
    (root / "test_crew.py").write_text(
        TEST_FILE.format(base_url=base_url, model=model, inputs=INPUTS, answer=ANSWER)
    )
    (root / "pytest.ini").write_text("[pytest]\n")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--crewguard-record-mode=once"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    cassette = root / "cassettes" / "test_crew" / "test_research.yaml"
    if done.returncode != 0 or not cassette.is_file():
        raise SystemExit(f"recording failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return cassette


def load_module(path: Path) -> ModuleType:
    """The recorded test module itself, so every variant builds exactly the recorded crew."""
    spec = importlib.util.spec_from_file_location("bench_test_crew", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Variants:
    def __init__(self, root: Path, make_crew: Callable[[], Any]) -> None:
        import vcr

        from pytest_crewguard.guard import CrewGuard
        from pytest_crewguard.guard_session import GuardSession
        from pytest_crewguard.pricing import PriceTable
        from pytest_crewguard.session import CrewguardSession

        self.root = root
        self.make_crew = make_crew
        self._guard_cls = CrewGuard
        self._session_cls = GuardSession
        self._results = CrewguardSession(prices=PriceTable())
        self._storage = root / "storage"
        self.plain_cassette = root / "plain_vcr.yaml"
        self._vcr = vcr.VCR()

    def record_plain(self) -> None:
        with self._vcr.use_cassette(str(self.plain_cassette), record_mode="once"):
            self._check(self.make_crew().kickoff(inputs=INPUTS).raw)
        if not self.plain_cassette.is_file():
            raise SystemExit("plain vcrpy did not write its cassette")

    @staticmethod
    def _check(raw: str) -> None:
        if raw != ANSWER:
            raise SystemExit(f"unexpected crew output: {raw!r}")

    def crewguard(self) -> None:
        session = self._session_cls.for_test(
            NODEID, rootdir=self.root, results=self._results, storage_root=self._storage
        )
        session.start()
        try:
            run = self._guard_cls(session).kickoff(self.make_crew, inputs=INPUTS)
        finally:
            problem = session.close()
        if problem:
            raise SystemExit(problem)
        self._check(run.output.raw)
        if not (run.llm_calls == 1 and run.calls[0].cost):
            raise SystemExit(f"crewguard replay lost its ledger: {run.calls!r}")

    def plain_vcr(self) -> None:
        with self._vcr.use_cassette(str(self.plain_cassette), record_mode="none") as cassette:
            self._check(self.make_crew().kickoff(inputs=INPUTS).raw)
            if not cassette.all_played:
                raise SystemExit("plain vcrpy did not replay every recorded request")

    def live(self) -> None:
        self._check(self.make_crew().kickoff(inputs=INPUTS).raw)

    def crewguard_shared_tls(self) -> None:
        from pytest_crewguard.tls import shared_tls_context

        with shared_tls_context():
            self.crewguard()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    # CrewAI prints its panels to stdout; the benchmark's own table must stay readable.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def tls_calls(profile: cProfile.Profile) -> list[tuple[str, int, float]]:
    """(function, calls, cumulative seconds) of the TLS-building functions the profile saw."""
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    found: list[tuple[str, int, float]] = []
    for (filename, _line, name), (_cc, ncalls, _tt, cumtime, _callers) in stats.items():
        for where, wanted in TLS_FUNCTIONS:
            if name != wanted:
                continue
            if where == "~" and filename == "~":
                label = "ssl.SSLContext." + name.split("'")[1]
            elif where != "~" and filename.endswith(where):
                label = f"{where.split('/')[0].removesuffix('.py')}.{name}"
            else:
                continue
            found.append((label, ncalls, cumtime))
    return sorted(found, key=lambda item: -item[2])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds (one kickoff per variant)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile-kickoffs", type=int, default=10)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--top", type=int, default=0, help="also print the top N cumulative entries")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="crewguard-replay-"))
    os.environ.setdefault("OPENAI_API_KEY", "sk-proj-Zq8vW2mN4xR7tY1uI3oP5aS6dF9gH0jK2lL4zX6cV8bN")
    os.environ.setdefault("ANTHROPIC_API_KEY", "sk-ant-api03-Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7Qw9E")
    prepare_crewai_environment(tmp / "storage")

    def reply(_request: ReceivedRequest) -> Reply:
        return Reply(text=ANSWER, input_tokens=1200, output_tokens=300)

    provider = ScriptedProvider(reply).start()
    base_url = (
        provider.anthropic_base_url if args.model.startswith("anthropic/") else provider.openai_base_url
    )
    try:
        record_with_plugin(tmp, base_url, args.model)
        started = time.perf_counter()
        import crewai  # noqa: F401

        # Its per-call warnings (e.g. approximate token counts) would bury the table.
        logging.getLogger("crewai").setLevel(logging.ERROR)
        import_s = time.perf_counter() - started
        module = load_module(tmp / "test_crew.py")
        bench = Variants(tmp, module.make_crew)
        with quiet():
            bench.record_plain()
        variants: dict[str, Callable[[], None]] = {
            "a crewguard replay": bench.crewguard,
            "b plain vcrpy replay": bench.plain_vcr,
            "c live scripted provider": bench.live,
        }
        try:
            import pytest_crewguard.tls  # noqa: F401

            variants["d crewguard replay, shared TLS context"] = bench.crewguard_shared_tls
        except ImportError:
            pass
        names = list(variants)
        times: dict[str, list[float]] = {name: [] for name in names}
        with quiet():
            for _ in range(args.warmup):
                for name in names:
                    variants[name]()
            for r in range(args.rounds):
                order = names[r % len(names) :] + names[: r % len(names)]
                for name in order:
                    t0 = time.perf_counter()
                    variants[name]()
                    times[name].append(time.perf_counter() - t0)

        profiles: dict[str, tuple[cProfile.Profile, float]] = {}
        with quiet():
            for name in names:
                profile = cProfile.Profile()
                t0 = time.perf_counter()
                profile.enable()
                for _ in range(args.profile_kickoffs):
                    variants[name]()
                profile.disable()
                profiles[name] = (profile, time.perf_counter() - t0)
    finally:
        provider.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    base = names[0]
    print(
        f"one-call crew ({args.model}), {args.rounds} interleaved rounds after {args.warmup} warm-up rounds"
    )
    print(f"python {sys.version.split()[0]}, nproc {os.cpu_count()}, import crewai {import_s:.1f} s")
    print(f"{'variant':<42}{'median ms':>10}{'p10..p90 ms':>16}{'ratio to a':>12}")
    for name in names:
        ms = [t * 1000 for t in times[name]]
        ratios = [x / y for x, y in zip(times[name], times[base], strict=True)]
        band = f"{percentile(ms, 0.1):.0f}..{percentile(ms, 0.9):.0f}"
        print(f"{name:<42}{statistics.median(ms):>10.1f}{band:>16}{statistics.median(ratios):>12.2f}")
    medians = [statistics.median(times[name]) for name in names]
    print(
        "ratios of medians "
        + ":".join(n.split()[0] for n in names)
        + " = "
        + ":".join(f"{m / medians[0]:.2f}" for m in medians)
    )

    print(f"\ncProfile, {args.profile_kickoffs} kickoffs per variant (profiled times are inflated);")
    print("CA loading = time inside load_verify_locations / set_default_verify_paths:")
    for name in names:
        profile, total = profiles[name]
        found = tls_calls(profile)
        per = total / args.profile_kickoffs * 1000
        loading = sum(cum for label, _n, cum in found if "verify" in label)
        print(f"  {name}: {per:.0f} ms per kickoff, CA loading {loading / total:.0%} of it")
        for label, ncalls, cumtime in found:
            print(
                f"      {label:<66}{ncalls / args.profile_kickoffs:>5.1f} calls/kickoff"
                f"{cumtime / args.profile_kickoffs * 1000:>8.1f} ms/kickoff"
            )
        if not found:
            print("      (no TLS context was built)")
        if args.top:
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
            print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
