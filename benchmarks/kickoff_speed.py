"""What one replayed kickoff costs, per crew, against a stub-LLM floor and plain vcrpy.

Crews, built fresh per kickoff (``LLM(...)`` included): ``one-call`` (``session_speed.py``'s
crew, 1 LLM call), ``example`` (``fixtures/example``'s research crew: a tool, pydantic output,
3 calls), ``tool-loop`` (one agent calling a tool 5 times, then answering: 6 calls). Each is
recorded fresh against the scripted provider (crewguard's cassette by ``GuardSession.for_test``
in record mode ``once``, plain vcrpy's with ``record_mode="once"``), the provider is stopped,
then one kickoff of each variant is timed:

  a   stub LLM, no HTTP: a CrewAI ``BaseLLM`` answering with the recorded messages in order. It
      reports native function calling, so CrewAI passes it the tools and runs the tool calls it
      returns, as for the OpenAI LLM; each call checks that it got the recorded request's
      number of tool results (the tools ran)
  a2  the real ``LLM`` and OpenAI SDK, ``httpx.HTTPTransport.handle_request`` answering in
      process with the recorded responses (no socket, no vcrpy), inside
      ``pytest_crewguard.tls.shared_tls_context()``: the floor of any HTTP-layer replay
  b   plain vcrpy: ``vcr.VCR().use_cassette(path, record_mode="none")``, as users run it
  c   crewguard: ``GuardSession.for_test`` start / ``CrewGuard.kickoff`` / close; checks the ledger

CrewAI's storage (it commits a SQLite row per kickoff) is, for every variant, under the
directory crewguard's plugin chooses (``/dev/shm`` when it has room, else the temp dir); c's
test directory is made afresh at every kickoff and removed at close, as for a test.

Every kickoff checks the final answer and the number of LLM calls. One process (crewai imported
once), warm-up first, variants interleaved with the order rotating each round. Reported: median
ms per kickoff (p10..p90), medians of the per-round ratios c/a2 (target <= 1.05) and c/b (target
<= 0.5), and a2/b: where c/b would be if crewguard cost nothing over a2. ``--profile N``
profiles N kickoffs of a2 and c of the first crew: crewguard's functions.
``--busy-core`` keeps another core busy with a spinning process while the rounds run, as a second
pytest-xdist worker would on a 2-core machine.

    .venv/bin/python benchmarks/kickoff_speed.py [--rounds 30] [--crews one-call,example] [--json f]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import vcr
from kickoff_crews import CASES, Case, Step, stub_llm_class, tool_results, transport_replay
from replay_speed import percentile, quiet
from session_speed import FAKE_OPENAI_KEY
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from pytest_crewguard.environment import new_storage_root, prepare_crewai_environment
from pytest_crewguard.guard import CrewGuard
from pytest_crewguard.guard_session import GuardSession
from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.session import CrewguardSession
from pytest_crewguard.testing.scripted_provider import ScriptedProvider
from pytest_crewguard.tls import shared_tls_context


class Bench:
    def __init__(self, root: Path, storage: Path) -> None:
        self.root, self.storage, self.vcr, self.stub_cls = root, storage, vcr.VCR(), stub_llm_class()
        self.results = CrewguardSession(prices=PriceTable())

    def record(self, case: Case) -> None:
        case.nodeid = f"test_kickoffs.py::test_{case.name.replace('-', '_')}"
        case.plain = self.root / f"plain_{case.name}.yaml"
        with self.vcr.use_cassette(str(case.plain), record_mode="once"):
            case.answer = case.build(None).kickoff(inputs=case.inputs).raw
        run = self.crewguard(case, record_mode="once")
        requests, responses = deserialize(case.plain.read_text(), yamlserializer)[:2]
        case.steps = [
            Step(q.path, tool_results(json.loads(q.body)["messages"]), r["status"]["code"],
                 [(k, v) for k, values in r["headers"].items() for v in values], bytes(r["body"]["string"]))
            for q, r in zip(requests, responses, strict=True)
        ]
        if run.output.raw != case.answer or run.llm_calls != len(case.steps):
            raise SystemExit(f"{case.name}: the two recordings differ")

    @staticmethod
    def check(case: Case, raw: str, calls: int) -> None:
        if raw != case.answer or calls != len(case.steps):
            raise SystemExit(f"{case.name}: {calls} LLM calls, output {raw!r}")

    def stub(self, case: Case) -> None:
        script: tuple[list[Step], list[Step]] = (case.steps, [])
        crew = case.build(lambda: self.stub_cls(model="gpt-4o-mini", script=script))
        self.check(case, crew.kickoff(inputs=case.inputs).raw, len(script[1]))

    def transport(self, case: Case) -> None:
        with shared_tls_context(), transport_replay(case.steps) as served:
            raw = case.build(None).kickoff(inputs=case.inputs).raw
        self.check(case, raw, len(served))

    def plain_vcr(self, case: Case) -> None:
        with self.vcr.use_cassette(str(case.plain), record_mode="none") as cassette:
            raw = case.build(None).kickoff(inputs=case.inputs).raw
        self.check(case, raw, cassette.play_count)

    def crewguard(self, case: Case, record_mode: str = "none") -> Any:
        session = GuardSession.for_test(case.nodeid, rootdir=self.root, results=self.results,
                                        record_mode=record_mode, storage_root=self.storage / "guarded")

        def crew_factory() -> Any:  # named: the profile tells the crew's build from crewguard's work
            return case.build(None)

        session.start()
        try:
            run = CrewGuard(session).kickoff(crew_factory, inputs=case.inputs)
        finally:
            problem = session.close()
        if problem:
            raise SystemExit(problem)
        if record_mode == "none":
            self.check(case, run.output.raw, run.llm_calls)
            if not all(call.cost for call in run.calls):
                raise SystemExit(f"{case.name}: crewguard replay lost its ledger: {run.calls!r}")
        return run


def profiled(variant: Callable[[Case], Any], case: Case, kickoffs: int) -> tuple[float, list[Any]]:
    """Seconds per kickoff and the profiles of every thread (CrewAI calls LLMs on worker threads)."""
    profiles = [cProfile.Profile()]

    def in_thread(*_event: Any) -> None:
        sys.setprofile(None)
        profiles.append(cProfile.Profile())
        profiles[-1].enable()

    with quiet():
        t0 = time.perf_counter()
        threading.setprofile(in_thread)
        profiles[0].enable()
        for _ in range(kickoffs):
            variant(case)
        profiles[0].disable()
        threading.setprofile(None)
    return (time.perf_counter() - t0) / kickoffs, profiles


def profile(bench: Bench, case: Case, kickoffs: int) -> None:
    """Where c's time over a2 goes: crewguard's functions by cumulative time, with the ones
    around the crew (whose time includes building and running it) summed apart. Threads that
    were running before (CrewAI's event-bus pool, where crewguard's event handler runs) are
    not seen; a wrapper's cumulative time includes what it wraps (a socket call, say)."""
    print(f"\ncProfile, {kickoffs} kickoffs of {case.name} per variant (profiled times are inflated)")
    for label, variant in (("a2", bench.transport), ("c", bench.crewguard)):
        seconds, profiles = profiled(variant, case, kickoffs)
        print(f"  {label}: {seconds * 1000:.1f} ms per kickoff")
    stats: dict[Any, tuple[Any, ...]] = pstats.Stats(*profiles).stats  # type: ignore[attr-defined]
    per = 1000 / kickoffs
    for part in ("/pytest_crewguard/", "/vcr/"):  # own time: the lines of these packages alone
        own = sum(v[2] for k, v in stats.items() if part in k[0])
        print(f"    own time in {part[1:-1]}: {own * per:.2f} ms/kickoff")
    crew = [k for k in stats if (k[0].endswith(f"crewai{os.sep}crew.py") and k[2] == "kickoff")
            or (k[0].endswith("kickoff_speed.py") and k[2] == "crew_factory")]
    around, todo = set(), list(crew)
    while todo:  # every caller of the crew's build and kickoff, up the stack
        key = todo.pop()
        if key not in around:
            around.add(key)
            todo.extend(stats[key][4])
    ours = sorted(((v[3], v[1], v[2], k) for k, v in stats.items() if "/pytest_crewguard/" in k[0]),
                  reverse=True)
    outer = max((cum for cum, _n, _own, k in ours if k in around), default=0.0)
    print(f"    crewguard around the crew (outermost wrapper minus the crew's build and kickoff): "
          f"{(outer - sum(stats[k][3] for k in crew)) * per:.2f} ms/kickoff")
    print(f"    {'other pytest_crewguard functions':<56}{'calls/kickoff':>14}{'cum ms':>8}{'own ms':>8}")
    for cum, calls, own, (filename, line, name) in [row for row in ours if row[3] not in around][:25]:
        where = f"{Path(filename).name}:{line} {name}"
        print(f"    {where[:55]:<56}{calls / kickoffs:>14.1f}{cum * per:>8.2f}{own * per:>8.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--crews", default=",".join(CASES), help="a subset of " + ",".join(CASES))
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N kickoffs of a2, c")
    parser.add_argument("--json", type=Path, help="also write the per-kickoff milliseconds here")
    parser.add_argument("--busy-core", action="store_true",
                        help="keep another core busy meanwhile, as a second pytest-xdist worker does")
    args = parser.parse_args()
    names = [n for n in CASES if n in args.crews.split(",")]
    if not names:
        raise SystemExit(f"--crews: none of {args.crews!r} is one of {','.join(CASES)}")

    tmp = tempfile.TemporaryDirectory(prefix="crewguard-kickoff-")
    root = Path(tmp.name)
    os.environ.setdefault("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    # Every variant's CrewAI storage where crewguard's plugin puts it (in memory when there is
    # room, see environment.new_storage_root): CrewAI syncs a SQLite commit per kickoff.
    storage = new_storage_root(prefix="crewguard-kickoff-storage-")
    prepare_crewai_environment(storage / "crewai-storage")
    logging.getLogger("crewai").setLevel(logging.ERROR)  # its per-call warnings would bury the table
    bench = Bench(root, storage)
    cases: list[Case] = []  # the last one is being recorded
    provider = ScriptedProvider(lambda request: cases[-1].responder(request)).start()
    try:
        for name in names:
            cases.append(CASES[name](root, provider.openai_base_url))
            with quiet():
                bench.record(cases[-1])
            print(f"recorded {name}: {len(cases[-1].steps)} LLM calls", flush=True)
    finally:
        provider.stop()  # replay must not reach it: a request now fails the kickoff

    variants = {"a": bench.stub, "a2": bench.transport, "b": bench.plain_vcr, "c": bench.crewguard}
    order = list(variants)
    ms: dict[str, dict[str, list[float]]] = {c.name: {v: [] for v in order} for c in cases}
    # A second process spinning on another core: does a kickoff, whose events CrewAI hands to
    # threads of its own, slow down when no core is idle (as next to a second xdist worker)?
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy_core else None
    try:
        with quiet():
            for r in range(-args.warmup, args.rounds):
                turn = order[r % len(order):] + order[: r % len(order)]
                for case in cases:
                    for v in turn:
                        t0 = time.perf_counter()
                        variants[v](case)
                        if r >= 0:
                            ms[case.name][v].append((time.perf_counter() - t0) * 1000)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    print(f"\n{args.rounds} interleaved rounds after {args.warmup} warm-up rounds, python "
          f"{sys.version.split()[0]}, nproc {os.cpu_count()}"
          + (", another core kept busy" if busy is not None else ""))
    print(f"{'crew':<11}{'LLM calls':>10}" + "".join(f"{v + ' ms (p10..p90)':>24}" for v in order)
          + f"{'c/a2':>7}{'c/b':>7}{'a2/b':>7}")
    summary: dict[str, Any] = {}
    for case in cases:
        times = ms[case.name]
        ratio = {o: statistics.median(c / x for c, x in zip(times["c"], t, strict=True))
                 for o, t in times.items()}
        cells = "".join(
            f"{f'{statistics.median(t):.1f} ({percentile(t, 0.1):.0f}..{percentile(t, 0.9):.0f})':>24}"
            for t in times.values()
        )
        floor = statistics.median(x / y for x, y in zip(times["a2"], times["b"], strict=True))
        print(f"{case.name:<11}{len(case.steps):>10}{cells}{ratio['a2']:>7.2f}{ratio['b']:>7.2f}{floor:>7.2f}")
        summary[case.name] = {"llm_calls": len(case.steps), "ms": times, "c/": ratio, "a2/b": floor}
    print("targets: c/a2 <= 1.05, c/b <= 0.5 (medians of per-round ratios); a2/b: the lowest c/b any "
          "replay at the HTTP layer reaches")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if args.profile:
        profile(bench, cases[0], args.profile)
    tmp.cleanup()
    shutil.rmtree(storage, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
