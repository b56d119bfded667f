"""Real-world compatibility: CrewAI's own cassette-backed tests under crewguard and pytest-recording.

    python benchmarks/crewai_suite.py                 # all three runs on the default selection
    python benchmarks/crewai_suite.py --runs a,b --tests test_task.py
    python benchmarks/crewai_suite.py --analyse-only  # re-read the last runs' outcomes

Sets up (once, then reuses) its own virtual environment ``.crewai-suite/venv`` with crewai
1.15.30 and the provider extras, pytest-recording, pytest-asyncio, pytest-timeout,
python-dotenv and this checkout (``pip install -e``). Fetches the crewai sdist with
``pip download --no-deps --no-binary :all: crewai==1.15.30`` and lays it out the way CrewAI's
repository does (``lib/crewai/``), next to CrewAI's root ``conftest.py`` and ``.env.test``
(vendored unchanged in ``benchmarks/crewai_suite/``, MIT), which the sdist lacks.

Then it runs the ``@pytest.mark.vcr`` tests of the selection three times:

a. pytest-recording alone (``-p no:crewguard``): the reference;
b. crewguard: every such test also gets ``@pytest.mark.crewguard(cassette=<its cassette>,
   match_on=<pytest-recording's matchers>)`` (``crewai_suite/crewguard_bridge.py``); the vcr
   marker, pytest-recording and CrewAI's conftest stay as they are;
c. crewguard with its default (strict) matching, no ``match_on``.

Every test has a 60 s timeout (pytest-timeout), as in CrewAI's CI, so nothing hangs the run.
It prints passed/failed/errors/skipped per run, the tests passing under (a) but not (b), the
share of (a)'s passes that also pass under (b) (the target is 95%), whether every passing test
of (b) with LLM calls reports them with tokens and cost (and agents where a crew ran), and how
(c)'s failures divide; ``.crewai-suite/summary.json`` holds the same.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "crewai_suite"
VERSION = "1.15.30"
EXTRAS = "anthropic,google-genai,bedrock,azure-ai-inference,litellm"
# CrewAI's own pins for its test tools (pyproject.toml of the CrewAI repository).
TEST_TOOLS = [
    "pytest-recording==0.13.4",
    "pytest-asyncio==1.3.0",
    "pytest-timeout==2.4.0",
    "python-dotenv",
    # The oldest litellm crewai[litellm] allows; newer ones import mcp.types.CacheableResult,
    # which the mcp release crewai pins (1.30) lacks.
    "litellm==1.88.6",
]
IMPORTS = (
    "import crewai, litellm.experimental_mcp_client, pytest_recording, pytest_asyncio, pytest_timeout, "
    "dotenv, anthropic, google.genai, boto3, azure.ai.inference"
)

DEFAULT_TESTS = [
    "test_crew.py",
    "test_task.py",
    "agents/test_agent.py",
    "test_llm.py",
    "llms/openai",
    "llms/anthropic",
    "llms/google",
    "llms/azure",
    "llms/bedrock",
    "test_streaming_integration.py",
    "llms/test_tool_call_streaming.py",
    "agents/test_lite_agent.py",
    "agents/test_native_tool_calling.py",
]

# CrewAI's pytest settings (root pyproject.toml), without xdist (-n, --dist) and randomisation.
PYTEST_INI = """\
[pytest]
markers =
    telemetry: mark test as a telemetry test (don't mock telemetry)
asyncio_mode = strict
asyncio_default_fixture_loop_scope = function
addopts = --tb=short --timeout={timeout} --block-network --import-mode=importlib
    -p no:randomly -p no:cacheprovider
python_files = test_*.py
python_classes = Test*
python_functions = test_*
"""

_GUARDED = ["-p", "crewguard_bridge", "--crewguard-cassette-dir=lib/crewai/tests/cassettes"]
RUNS = {
    "a": ("pytest-recording", ["-p", "no:crewguard"]),
    "b": ("crewguard, CrewAI matchers", [*_GUARDED, "--suite-match-on=crewai"]),
    "c": ("crewguard, strict matching", [*_GUARDED, "--suite-match-on=strict"]),
    # b plus CrewAI's host normalisation (its before_record_request) as a crewguard_config.
    "d": ("b + crewguard_config hosts", [*_GUARDED, "--suite-match-on=crewai", "--suite-crewguard-config"]),
}

# Request paths of LLM calls in the providers' APIs (cassette URIs).
LLM_PATH = re.compile(
    r"/chat/completions|/v1/responses(?!/input_tokens)|/v1/messages(?!/count_tokens)|"
    r":generateContent|:streamGenerateContent|/converse(-stream)?\b|/invoke(-with-response-stream)?\b|"
    r"/completions\b"
)


def sh(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)


# -- environment ------------------------------------------------------------------------------


def ensure_venv(venv: Path, reinstall: bool) -> Path:
    """The suite's own virtual environment, created once and reused."""
    python = venv / "bin" / "python"
    if not python.exists():
        sh([sys.executable, "-m", "venv", str(venv)])
    ok = subprocess.run([str(python), "-c", IMPORTS], capture_output=True).returncode == 0
    where = subprocess.run(
        [str(python), "-c", "import pytest_crewguard; print(pytest_crewguard.__file__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    ours = where.startswith(str(REPO))
    if reinstall or not ok or not ours:
        started = time.monotonic()
        sh(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                f"crewai[{EXTRAS}]=={VERSION}",
                *TEST_TOOLS,
                "-e",
                str(REPO),
            ]
        )
        print(f"venv ready in {time.monotonic() - started:.0f} s")
    return python


def ensure_sdist(python: Path, cache: Path) -> Path:
    """The crewai sdist laid out as in CrewAI's repository: ``<root>/lib/crewai/tests``."""
    root = cache / "root"
    package = root / "lib" / "crewai"
    if not (package / "tests" / "cassettes").is_dir():
        downloads = cache / "sdist"
        archive = downloads / f"crewai-{VERSION}.tar.gz"
        if not archive.exists():
            sh(
                [
                    str(python),
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    f"crewai=={VERSION}",
                    "-d",
                    str(downloads),
                ]
            )
        unpacked = cache / "unpacked"
        shutil.rmtree(unpacked, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        shutil.rmtree(package, ignore_errors=True)
        package.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpacked / f"crewai-{VERSION}"), package)
        shutil.rmtree(unpacked)
    return root


def place_repo_files(root: Path, timeout: int) -> None:
    """CrewAI's root conftest.py and .env.test (unchanged), and its pytest settings."""
    shutil.copyfile(HERE / "conftest.py", root / "conftest.py")
    shutil.copyfile(HERE / "env.test", root / ".env.test")
    (root / "pytest.ini").write_text(PYTEST_INI.format(timeout=timeout))


# -- running ----------------------------------------------------------------------------------


def run_suite(
    python: Path, root: Path, out: Path, key: str, tests: list[str], extra: list[str]
) -> dict[str, Any]:
    label, flags = RUNS[key]
    outcomes = out / f"{key}.outcomes.jsonl"
    outcomes.unlink(missing_ok=True)
    report = out / f"{key}.report.json"
    report.unlink(missing_ok=True)
    cmd = [
        str(python),
        "-m",
        "pytest",
        *[f"lib/crewai/tests/{t}" for t in tests],
        "-m",
        "vcr",
        "-q",
        "-p",
        "suite_outcomes",
        f"--suite-outcomes={outcomes}",
        *flags,
        *extra,
    ]
    if key != "a":  # every crewguard run writes its JSON report
        cmd.append(f"--crewguard-report={report}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTEST_VCR_RECORD_MODE"] = "none"  # replay only, as CrewAI's CI does
    # litellm downloads its price map when first imported. Under pytest-recording vcrpy refuses
    # that GET with an exception litellm does not catch, and CrewAI then takes litellm for
    # missing for the rest of the process (15 tests of test_llm.py fail in a row). Offline, read
    # litellm's bundled copy in every run.
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("PYTEST_ADDOPTS", None)
    print(f"== run {key} ({label}) started:", " ".join(cmd), flush=True)
    started = time.monotonic()
    with (out / f"{key}.log").open("w") as log:
        proc = subprocess.run(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - started
    tail = (out / f"{key}.log").read_text().strip().splitlines()[-1:]
    print(f"== run {key} exit {proc.returncode} in {elapsed:.0f} s: {tail[0] if tail else ''}", flush=True)
    return {"label": label, "command": " ".join(cmd), "exit": proc.returncode, "seconds": round(elapsed, 1)}


def load_outcomes(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return {e["nodeid"]: e for e in map(json.loads, path.read_text().splitlines()) if e}


# -- analysis ---------------------------------------------------------------------------------


def counts(outcomes: dict[str, dict[str, Any]]) -> dict[str, int]:
    c = Counter(e["outcome"] for e in outcomes.values())
    return {k: c.get(k, 0) for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")}


def cassette_llm_requests(path: Path) -> int:
    """LLM requests in a cassette (read as text: the harness itself needs no YAML library)."""
    if not path.exists():
        return 0
    return sum(
        1
        for m in re.finditer(r"^\s+uri: (\S+)", path.read_text(errors="replace"), re.M)
        if LLM_PATH.search(m.group(1))
    )


def cassette_of(root: Path, nodeid: str) -> Path:
    """pytest-recording's cassette for ``nodeid`` (see ``crewai_suite/crewguard_bridge.py``)."""
    file_part, _, name = nodeid.partition("::")
    test_file = root / file_part
    parts = name.split("::")
    cls = parts[0] if len(parts) > 1 else None
    cassette = f"{cls}.{parts[-1]}" if cls else parts[-1]
    for ch in r"<>?%*:|\"'/\\":
        cassette = cassette.replace(ch, "-")
    tests_root = root / "lib" / "crewai" / "tests"
    rel = test_file.parent.relative_to(tests_root)
    return tests_root / "cassettes" / rel / f"{cassette}.yaml"


def llm_requests_made(nodeid: str, reference: dict[str, dict[str, Any]], root: Path) -> int:
    """LLM requests the test makes: what pytest-recording played for it in run (a), else what
    its cassette holds."""
    played = reference.get(nodeid, {}).get("played")
    if played is not None:
        return sum(1 for p in played if LLM_PATH.search(p))
    return cassette_llm_requests(cassette_of(root, nodeid))


def check_reporting(
    root: Path,
    outcomes: dict[str, dict[str, Any]],
    report: dict[str, Any],
    reference: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Every passing test that makes LLM calls reports them with tokens and cost, and names the
    agent of each call where a crew ran."""
    tests = report.get("tests", {})
    problems: dict[str, list[str]] = defaultdict(list)
    checked = 0
    for nodeid, entry in outcomes.items():
        if entry["outcome"] != "passed" or not llm_requests_made(nodeid, reference, root):
            continue
        checked += 1
        record = tests.get(nodeid)
        if record is None:
            problems["not in the report"].append(nodeid)
            continue
        calls = [c for c in record.get("calls", []) if int(c.get("status") or 200) < 400]
        if not record.get("calls"):
            problems["no LLM calls reported"].append(nodeid)
            continue
        if not calls:  # only error responses (a test of the error path): no usage to report
            continue
        unknown = [c for c in calls if c.get("usage_known") is False]
        if unknown and '"usage"' not in cassette_of(root, nodeid).read_text(errors="replace"):
            # Streams recorded without usage: crewguard shows the usage as unknown, never as 0.
            problems["usage not in the recording (reported as unknown)"].append(nodeid)
        elif record.get("tokens", 0) <= 0 or unknown:
            problems["calls without tokens"].append(nodeid)
        elif any(c.get("cost") is None for c in calls) and not record.get("unpriced_models"):
            problems["calls without cost"].append(nodeid)
        if record.get("unpriced_models"):
            problems["unpriced model"].append(f"{nodeid} ({', '.join(record['unpriced_models'])})")
        if record.get("runs", 0) > 0 and any(not c.get("agent") for c in calls):
            problems["crew ran, call without agent"].append(nodeid)
    return {"checked": checked, "problems": {k: sorted(v) for k, v in problems.items()}}


def recorded_requests(path: Path) -> list[tuple[str, str]]:
    """(method, uri) of each interaction of a cassette, read as text."""
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    methods = re.findall(r"^    method: (\S+)", text, re.M)
    uris = re.findall(r"^    uri: (\S+)", text, re.M)
    return list(zip(methods, uris, strict=False))


def miss_cause(root: Path, nodeid: str, text: str) -> str | None:
    """Why crewguard had no recorded response, from its message and the cassette."""
    from urllib.parse import urlsplit

    found = re.search(r"no recorded response for ([A-Za-z]+) (https?://\S+)", text)
    if not found:
        return None
    method, url = found.groups()
    live = urlsplit(url)
    recorded = [(m, urlsplit(u)) for m, u in recorded_requests(cassette_of(root, nodeid))]
    endpoint = re.sub(r"/models/[^/:]+|/deployments/[^/]+|/model/[^/]+", "/…", live.path)
    if "sent it more often" in text:
        return f"request repeated more often than recorded ({endpoint})"
    if "cassette does not exist" in text:
        return "no cassette"
    if not any(r.path == live.path for _, r in recorded):
        return f"endpoint not in the cassette: {method.upper()} {live.hostname}{endpoint}"
    same_path = [(m, r) for m, r in recorded if r.path == live.path]
    if not any(m.upper() == method.upper() for m, _ in same_path):
        return f"method differs ({method} live, {same_path[0][0]} recorded)"
    if not any(r.hostname == live.hostname for _, r in same_path):
        return f"host differs ({live.hostname} live, {same_path[0][1].hostname} recorded)"
    if live.query != same_path[0][1].query and not any(r.query == live.query for _, r in same_path):
        return f"query differs ({endpoint})"
    return f"body differs ({endpoint})"


def signature(entry: dict[str, Any]) -> str:
    """A failure's first line with the specifics taken out, to group failures by cause."""
    line = entry.get("first_line", "")
    line = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", line)
    line = re.sub(r"0x[0-9a-f]+|\d+(\.\d+)?", "N", line)
    return line[:160]


def cause(root: Path, nodeid: str, entry: dict[str, Any]) -> str:
    return miss_cause(root, nodeid, entry.get("text", "") + entry.get("first_line", "")) or signature(entry)


def group_failures(
    root: Path, outcomes: dict[str, dict[str, Any]], nodeids: list[str]
) -> list[dict[str, Any]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for nodeid in nodeids:
        groups[cause(root, nodeid, outcomes[nodeid])].append(nodeid)
    return [
        {
            "count": len(ids),
            "cause": key,
            "example": ids[0],
            "first_line": outcomes[ids[0]]["first_line"],
            "tests": ids,
        }
        for key, ids in sorted(groups.items(), key=lambda kv: -len(kv[1]))
    ]


def classify_strict(
    root: Path, outcomes: dict[str, dict[str, Any]], report: dict[str, Any]
) -> dict[str, Any]:
    """(c): each failure is a cassette miss whose message names the changed field, or not."""
    tests = report.get("tests", {})
    named, unnamed, other = [], [], []
    for nodeid, entry in outcomes.items():
        if entry["outcome"] not in ("failed", "error"):
            continue
        text = entry.get("text", "")
        gates = tests.get(nodeid, {}).get("failed_gates", [])
        if "cassette_miss" in gates or "no recorded response" in text:
            # The diff of the nearest recorded request names the field: "-messages[1].content: ..."
            if re.search(r"^\s*[-+](?![-+])\s?[\w.\[\]-]+: ", text, re.M):
                named.append(nodeid)
            else:
                unnamed.append(nodeid)
        else:
            other.append(nodeid)
    return {
        "cassette_miss_naming_field": len(named),
        "cassette_miss_without_field": sorted(unnamed),
        "other_failures": group_failures(root, outcomes, other),
        "miss_causes": dict(Counter(cause(root, n, outcomes[n]) for n in named + unnamed)),
        "other_failure_count": len(other),
    }


def compare(root: Path, a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How many of (a)'s passes also pass in the crewguard run ``b``, and why the others fail."""
    passed_a = {n for n, e in a.items() if e["outcome"] == "passed"}
    passed_b = {n for n, e in b.items() if e["outcome"] == "passed"}
    lost = sorted(passed_a - passed_b)
    return {
        "passed_a": len(passed_a),
        "passed_a_and_b": len(passed_a & passed_b),
        "ratio": round(len(passed_a & passed_b) / len(passed_a), 4) if passed_a else None,
        "passed_b_not_a": sorted(passed_b - passed_a),
        "lost": [
            {
                "nodeid": n,
                "outcome": b.get(n, {}).get("outcome", "missing"),
                "first_line": b.get(n, {}).get("first_line", ""),
            }
            for n in lost
        ],
        "lost_groups": group_failures(root, b, [n for n in lost if n in b]),
    }


def analyse(root: Path, out: Path, keys: list[str], meta: dict[str, Any]) -> dict[str, Any]:
    runs = {k: load_outcomes(out / f"{k}.outcomes.jsonl") for k in keys}
    summary: dict[str, Any] = {"crewai": VERSION, "runs": {}}
    for key, outcomes in runs.items():
        summary["runs"][key] = {
            **meta.get(key, {}),
            "label": RUNS[key][0],
            "tests": len(outcomes),
            **counts(outcomes),
        }
        timeouts = sorted(n for n, e in outcomes.items() if "Timeout" in e.get("first_line", ""))
        summary["runs"][key]["timeouts"] = timeouts
    for key in ("b", "d"):
        if "a" in runs and key in runs:
            summary[f"a_vs_{key}"] = compare(root, runs["a"], runs[key])
        if key in runs and (out / f"{key}.report.json").exists():
            report = json.loads((out / f"{key}.report.json").read_text())
            summary[f"{key}_reporting"] = check_reporting(root, runs[key], report, runs.get("a", {}))
            summary[f"{key}_report_totals"] = report.get("totals")
    if "c" in runs:
        report = json.loads((out / "c.report.json").read_text()) if (out / "c.report.json").exists() else {}
        summary["c_failures"] = classify_strict(root, runs["c"], report)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print("\n" + "=" * 100)
    print(f"CrewAI {summary['crewai']} cassette-backed tests (@pytest.mark.vcr)")
    heads = ("tests", "passed", "failed", "errors", "skipped", "timeouts")
    print(f"{'run':<32} " + " ".join(f"{h:>8}" for h in heads) + f" {'time':>7}")
    for key, r in summary["runs"].items():
        print(
            f"{key}. {r['label']:<29} {r['tests']:>8} {r['passed']:>8} {r['failed']:>8} {r['error']:>8} "
            f"{r['skipped']:>8} {len(r['timeouts']):>8} {r.get('seconds', 0):>7.0f}s"
        )
    for key in ("b", "d"):
        ab = summary.get(f"a_vs_{key}")
        if ab:
            ratio = ab["ratio"] or 0.0
            verdict = "meets" if ratio >= 0.95 else "misses"
            print(
                f"\n({key}) of the {ab['passed_a']} tests pytest-recording passes, "
                f"{ab['passed_a_and_b']} pass under crewguard: {ratio:.1%} ({verdict} the 95% target)"
            )
            if ab["passed_b_not_a"]:
                print(f"passing under crewguard only: {len(ab['passed_b_not_a'])}")
            if ab["lost"]:
                print(
                    f"passing under pytest-recording but not under crewguard ({len(ab['lost'])}), by cause:"
                )
                for g in ab["lost_groups"]:
                    print(f"  {g['count']:>4}  {g['cause'][:140]}\n        e.g. {g['example']}")
        rep = summary.get(f"{key}_reporting")
        if rep:
            print(f"reporting ({key}): {rep['checked']} passing tests make LLM calls (as played under (a))")
            if not rep["problems"]:
                print("  every one reports its calls with tokens and cost, with agents where a crew ran")
            for what, ids in rep["problems"].items():
                print(f"  {what}: {len(ids)}" + "".join(f"\n      {i}" for i in ids[:5]))
    c = summary.get("c_failures")
    if c:
        print(
            f"\nstrict matching (c): {c['cassette_miss_naming_field']} failures are cassette misses naming "
            f"the changed field; {len(c['cassette_miss_without_field'])} misses without a field; "
            f"{c['other_failure_count']} other failures"
        )
        for what, n in sorted(c["miss_causes"].items(), key=lambda kv: -kv[1]):
            print(f"  {n:>4}  miss: {what}")
        for g in c["other_failures"][:15]:
            print(f"  {g['count']:>4}  {g['cause'][:140]}\n        e.g. {g['example']}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", default="a,b,c", help="which runs, e.g. a,b or a,b,c,d (default a,b,c)")
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="paths under CrewAI's tests/")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per test (pytest-timeout)")
    parser.add_argument(
        "--cache", type=Path, default=REPO / ".crewai-suite", help="venv, sdist and run output"
    )
    parser.add_argument("--reinstall", action="store_true", help="pip install into the venv again")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at the same time (the tests mostly wait, so 2-3 fit on 2 cores)",
    )
    parser.add_argument("--analyse-only", action="store_true", help="only re-read the last runs' outcomes")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    keys = [k.strip() for k in args.runs.split(",") if k.strip()]
    if unknown := [k for k in keys if k not in RUNS]:
        parser.error(f"unknown run {unknown}; choose from a, b, c, d")
    cache = args.cache.resolve()
    out = cache / "runs"
    out.mkdir(parents=True, exist_ok=True)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    root = cache / "root"
    if not args.analyse_only:
        python = ensure_venv(cache / "venv", args.reinstall)
        root = ensure_sdist(python, cache)
        place_repo_files(root, args.timeout)

        def run(key: str) -> None:
            result = run_suite(python, root, out, key, args.tests, args.pytest_args)
            # Re-read before writing: another invocation may have finished other runs meanwhile.
            with meta_lock:
                latest = json.loads(meta_path.read_text()) if meta_path.exists() else {}
                latest[key] = {**result, "tests_selected": args.tests, "jobs": args.jobs}
                meta_path.write_text(json.dumps(latest, indent=1))

        meta_lock = threading.Lock()

        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            list(pool.map(run, keys))
        meta = json.loads(meta_path.read_text())
    # Compare every run on record made on the same selection of tests as the newest one.
    selection = meta[keys[0]].get("tests_selected") if keys[0] in meta else None
    keys = [k for k in RUNS if k in meta and meta[k].get("tests_selected") == selection]
    summary = analyse(root, out, keys, meta)
    (cache / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary)
    print(f"\nsummary: {cache / 'summary.json'}; logs and outcomes: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
