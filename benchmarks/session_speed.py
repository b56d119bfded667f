"""What a regression suite of many one-call crew tests costs per session, and per test.

Generates, in a temporary directory, one project per variant and suite size, each with N
one-call crew tests (a shared small crew, an LLM against the scripted provider on loopback,
a different topic per test), records every test's cassette once, then times whole pytest
sessions as fresh subprocesses:

  a  crewguard replay: ``@pytest.mark.crewguard`` tests, ``crewguard.kickoff(...)``,
     recorded with ``--crewguard-record-mode=once``, replayed with the default mode (none)
  b  pytest-recording replay: the same crews kicked off directly under ``@pytest.mark.vcr``,
     recorded with ``--record-mode=once``, replayed with ``--record-mode=none -p no:crewguard``
  c  floor: the same crews with a stub LLM (a CrewAI ``BaseLLM`` subclass that returns the
     answer, no HTTP, no cassette), ``-p no:crewguard``
  d  floor of any HTTP-layer replay: the real LLM and SDK, with httpx's transport answering in
     process with the recorded response (no socket, no vcrpy, no cassette file), inside
     crewguard's shared TLS context, ``-p no:crewguard``

CrewAI commits a SQLite row per kickoff to its storage, synced to disk: every variant keeps that
storage in the same kind of place, by default where crewguard's plugin puts it (``/dev/shm`` when
it has room; ``--crewai-storage temp``: the temp dir, for every variant).

Sessions are interleaved round by round (every suite size, the variant order rotating each
round) so that machine noise hits all variants alike. Reported: median wall seconds per
session, the per-test slope between the two largest sizes, and the ratios a/b and
slope a / slope c. With ``--parallel`` it then times the largest suite of a and of the stub
floor c with ``-n 0`` and ``-n 2`` (pytest-xdist), interleaved the same way: what two workers
give crew tests with no crewguard, no HTTP and no cassette at all, beside what they give
crewguard's. (Under xdist each of c's workers gets a storage directory of its own, as
crewguard gives each test: in a shared one CrewAI's file lock on its task output database,
polled every 0.25 s, makes the workers wait for each other.)

    .venv/bin/python benchmarks/session_speed.py [--tests 1,100,500] [--rounds 3] [--parallel]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pytest_crewguard.environment import CREWAI_SWITCHES, session_storage_parent
from pytest_crewguard.testing.scripted_provider import ReceivedRequest, Reply, ScriptedProvider

ANSWER = "AI agents plan, act and remember."
PER_FILE = 20
FAKE_OPENAI_KEY = "sk-proj-Zq8vW2mN4xR7tY1uI3oP5aS6dF9gH0jK2lL4zX6cV8bN"

# The crew of tests/conftest.py's CREW_HEADER, plus the stub LLM for the floor.
CREW_MODULE = '''
from typing import Any

from crewai import Agent, Crew, LLM, Task
from crewai.llms.base_llm import BaseLLM

BASE_URL = {base_url!r}
MODEL = "gpt-4o-mini"
ANSWER = {answer!r}


class StubLLM(BaseLLM):
    """Answers at once, without HTTP: what a kickoff costs with no transport at all."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return ANSWER


def make_crew(llm=None):
    llm = llm if llm is not None else LLM(model=MODEL, base_url=BASE_URL)
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher",
                  llm=llm, max_iter=25)
    task = Task(name="research", description="Research {{topic}} and summarise it",
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def make_stub_crew():
    return make_crew(StubLLM(model="stub-model"))
'''

TESTS = {
    "crewguard": '''
@pytest.mark.crewguard
def test_crew_{i}(crewguard):
    run = crewguard.kickoff(make_crew, inputs={{"topic": "topic {i}"}})
    assert run.output.raw == ANSWER
''',
    "recording": '''
@pytest.mark.vcr
def test_crew_{i}():
    assert make_crew().kickoff(inputs={{"topic": "topic {i}"}}).raw == ANSWER
''',
    "stub": '''
def test_crew_{i}():
    assert make_stub_crew().kickoff(inputs={{"topic": "topic {i}"}}).raw == ANSWER
''',
    "transport": '''
def test_crew_{i}():
    assert make_crew().kickoff(inputs={{"topic": "topic {i}"}}).raw == ANSWER
''',
}

# Variant c's conftest: under pytest-xdist, each worker its own CrewAI storage (see above).
STUB_CONFTEST = '''
import os
import tempfile

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["CREWAI_STORAGE_DIR"] = tempfile.mkdtemp(dir=os.environ["CREWAI_STORAGE_DIR"])
'''

# Variant d's conftest: every request answered in process with the response crewguard recorded
# (every test's is the same answer), the TLS context shared as crewguard's replay shares it.
TRANSPORT_CONFTEST = '''
import json
from pathlib import Path

import httpx
import pytest

from pytest_crewguard.tls import shared_tls_context

RECORDED = json.loads((Path(__file__).parent / "response.json").read_text())


@pytest.fixture(autouse=True)
def in_process_transport(monkeypatch):
    def handle_request(self, request):
        request.read()
        return httpx.Response(RECORDED["status"], headers=RECORDED["headers"],
                              content=RECORDED["body"].encode(), request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
    with shared_tls_context():
        yield
'''


BASE = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
REPLAY_ARGS = {
    "crewguard": [],
    "recording": ["-p", "no:crewguard", "--record-mode=none"],
    "stub": ["-p", "no:crewguard"],
    "transport": ["-p", "no:crewguard"],
}
RECORD_ARGS = {
    "crewguard": ["--crewguard-record-mode=once"],
    "recording": ["-p", "no:crewguard", "--record-mode=once"],
}
LABELS = {
    "crewguard": "a crewguard replay",
    "recording": "b pytest-recording replay",
    "stub": "c stub LLM, no HTTP",
    "transport": "d SDK, in-process HTTP",
}


def make_project(root: Path, variant: str, n_tests: int, base_url: str) -> Path:
    project = root / f"{variant}_{n_tests}"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "crew_app.py").write_text(CREW_MODULE.format(base_url=base_url, answer=ANSWER))
    header = "import pytest\nfrom crew_app import ANSWER, make_crew, make_stub_crew\n"
    for start in range(0, n_tests, PER_FILE):
        body = [TESTS[variant].format(i=i) for i in range(start, min(start + PER_FILE, n_tests))]
        (project / f"test_crews_{start // PER_FILE}.py").write_text(header + "\n".join(body))
    if variant == "transport":
        (project / "conftest.py").write_text(TRANSPORT_CONFTEST)
    if variant == "stub":
        (project / "conftest.py").write_text(STUB_CONFTEST)
    return project


def write_recorded_response(cassette: Path, project: Path) -> None:
    """Variant d's answer: the response of a cassette crewguard recorded."""
    from pytest_crewguard.cassette_yaml import ReadableYamlSerializer

    response = ReadableYamlSerializer.deserialize(cassette.read_text())["interactions"][0]["response"]
    body = response["body"]["string"]
    recorded = {
        "status": response["status"]["code"],
        "headers": [(name, value) for name, values in response["headers"].items() for value in values
                    if name.lower() not in ("content-encoding", "content-length")],
        "body": body.decode() if isinstance(body, bytes) else body,
    }
    (project / "response.json").write_text(json.dumps(recorded))


def environment(root: Path, storage: str = "memory") -> dict[str, str]:
    # The same CrewAI switches for every variant (crewguard sets them itself; without the
    # plugin CrewAI would try telemetry and its version check), and a placeholder key.
    env = dict(os.environ, **CREWAI_SWITCHES)
    # CrewAI's storage in the same kind of place for every variant: where crewguard's plugin
    # puts it by default (memory, when /dev/shm has room), or all in the temp dir (TMPDIR
    # tells crewguard's plugin to use it).
    env.pop("TMPDIR", None)
    parent = session_storage_parent() if storage == "memory" else None
    if parent is None:
        env["TMPDIR"] = str(root)
    env["CREWAI_STORAGE_DIR"] = tempfile.mkdtemp(prefix="crewai-storage-", dir=parent or root)
    env["OPENAI_API_KEY"] = FAKE_OPENAI_KEY
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_session(project: Path, args: list[str], n_tests: int, env: dict[str, str]) -> float:
    """One pytest subprocess; its wall seconds. Every test must pass."""
    started = time.perf_counter()
    done = subprocess.run([*BASE, *args], cwd=project, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    passed = re.search(r"(\d+) passed", done.stdout)
    if done.returncode != 0 or not passed or int(passed.group(1)) != n_tests:
        tail = "\n".join(done.stdout.splitlines()[-30:])
        raise SystemExit(f"session failed in {project} ({done.returncode}):\n{tail}\n{done.stderr[-3000:]}")
    return took


def cassettes_in(project: Path) -> int:
    return sum(1 for _ in (project / "cassettes").rglob("*.yaml"))


def slope(seconds: dict[int, float], small: int, large: int) -> float:
    return (seconds[large] - seconds[small]) / (large - small)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tests", default="1,100,500", help="suite sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", action="store_true", help="also -n 0 vs -n 2 on the largest suite")
    parser.add_argument("--parallel-rounds", type=int, default=3)
    parser.add_argument("--parallel-tests", help="suite sizes for --parallel (default: the largest)")
    parser.add_argument("--variants", default=",".join(TESTS), help="a subset of " + ",".join(TESTS))
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--crewai-storage", choices=("memory", "temp"), default="memory",
                        help="where every variant keeps CrewAI's storage (memory: /dev/shm when it has room)")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.tests.split(","))
    variants = [v for v in TESTS if v in args.variants.split(",")]
    if "crewguard" not in variants:
        raise SystemExit("--variants must include crewguard")
    parallel_sizes = [int(n) for n in args.parallel_tests.split(",")] if args.parallel_tests else sizes[-1:]
    if not set(parallel_sizes) <= set(sizes):
        raise SystemExit("--parallel-tests must be among --tests")

    def reply(_request: ReceivedRequest) -> Reply:
        return Reply(text=ANSWER, input_tokens=1200, output_tokens=300)

    provider = ScriptedProvider(reply).start()
    with tempfile.TemporaryDirectory(prefix="crewguard-sessions-") as tmp:
        root = Path(tmp)
        env = environment(root, args.crewai_storage)
        atexit.register(shutil.rmtree, env["CREWAI_STORAGE_DIR"], ignore_errors=True)
        projects = {
            (v, n): make_project(root, v, n, provider.openai_base_url) for v in variants for n in sizes
        }
        try:
            for (variant, n), project in projects.items():
                if variant in RECORD_ARGS:
                    took = run_session(project, RECORD_ARGS[variant], n, env)
                    if cassettes_in(project) != n:
                        raise SystemExit(f"{project}: {cassettes_in(project)} cassettes for {n} tests")
                    print(f"recorded {variant} x {n}: {took:.1f} s", flush=True)
            for (variant, n), project in projects.items():
                if variant == "transport":
                    recorded = next((projects[("crewguard", n)] / "cassettes").rglob("*.yaml"))
                    write_recorded_response(recorded, project)
        finally:
            provider.stop()  # replay must not reach it: a request now fails the session

        for variant in variants:  # warm the bytecode and file caches of every variant
            run_session(projects[(variant, sizes[0])], REPLAY_ARGS[variant], sizes[0], env)
        seconds: dict[str, dict[int, list[float]]] = {v: {n: [] for n in sizes} for v in variants}
        for r in range(args.rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for n in sizes:
                for variant in order:
                    took = run_session(projects[(variant, n)], REPLAY_ARGS[variant], n, env)
                    seconds[variant][n].append(took)
                    print(f"round {r + 1}: {variant} x {n}: {took:.2f} s", flush=True)

        # (variant, size) -> "-n 0" / "-n 2" -> wall seconds per round
        in_parallel = [v for v in ("crewguard", "stub") if v in variants]
        parallel: dict[tuple[str, int], dict[str, list[float]]] = {
            (v, n): {"-n 0": [], "-n 2": []} for v in in_parallel for n in parallel_sizes
        }
        if args.parallel:
            for r in range(args.parallel_rounds):
                order = ["-n 0", "-n 2"] if r % 2 == 0 else ["-n 2", "-n 0"]
                for (variant, n), times in parallel.items():
                    for flag in order:
                        args_n = [*REPLAY_ARGS[variant], *flag.split()]
                        took = run_session(projects[(variant, n)], args_n, n, env)
                        times[flag].append(took)
                        print(f"parallel round {r + 1}: {variant} {flag} x {n}: {took:.2f} s", flush=True)

    print(f"\n{args.rounds} interleaved rounds, python {sys.version.split()[0]}, nproc {os.cpu_count()}")
    print(f"{'variant':<28}" + "".join(f"{f'{n} tests':>22}" for n in sizes) + f"{'slope ms/test':>16}")
    medians = {v: {n: statistics.median(seconds[v][n]) for n in sizes} for v in variants}
    small, large = (sizes[-2], sizes[-1]) if len(sizes) > 1 else (sizes[0], sizes[0])
    slopes: dict[str, float] = {}
    for v in variants:
        cells = "".join(
            f"{f'{medians[v][n]:.2f} ({min(seconds[v][n]):.2f}..{max(seconds[v][n]):.2f})':>22}"
            for n in sizes
        )
        if small != large:
            slopes[v] = slope(medians[v], small, large)
        print(f"{LABELS[v]:<28}{cells}{slopes.get(v, 0) * 1000:>16.1f}")
    for n in sizes if "recording" in variants else []:
        paired = statistics.median(
            a / b for a, b in zip(seconds["crewguard"][n], seconds["recording"][n], strict=True)
        )
        print(f"{n} tests: a/b ratio of medians {medians['crewguard'][n] / medians['recording'][n]:.2f}, "
              f"paired median {paired:.2f}")
    for other, name in (("recording", "a/b"), ("stub", "a/c"), ("transport", "a/d")):
        if other in slopes:
            ratio = slopes["crewguard"] / slopes[other]
            print(f"slope between {small} and {large} tests: {name} {ratio:.2f}")
    for (variant, n), times in parallel.items() if args.parallel else ():
        n0, n2 = (statistics.median(times[flag]) for flag in ("-n 0", "-n 2"))
        rounds = ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(times["-n 0"], times["-n 2"], strict=True))
        print(f"{LABELS[variant]} x {n}: -n 0 {n0:.2f} s, -n 2 {n2:.2f} s (per round {rounds}): "
              f"speed-up {n0 / n2:.2f}x")
    if args.json:
        parallel_out = {f"{v} x {n}": times for (v, n), times in parallel.items()}
        args.json.write_text(json.dumps({"seconds": seconds, "parallel": parallel_out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
