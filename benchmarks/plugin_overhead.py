"""What installing pytest-crewguard costs a test run that has no crew tests.

Runs a pytest session of plain tests in a temporary directory, as a fresh subprocess each
time, with the plugin (entry point loaded as installed) and with ``-p no:crewguard``,
interleaved A, B, A, B, ... so that machine noise hits both alike. A conftest in the temporary
directory records whether ``crewai`` was imported by the end of the session.

Exits 1 when the median difference (plugin minus no plugin) is at or above the threshold,
or when the plugin run imported crewai, so it can serve as a check.

    .venv/bin/python benchmarks/plugin_overhead.py [--tests 500] [--repeat 10] [--threshold 0.3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CONFTEST = """
import json, os, sys

def pytest_sessionfinish(session, exitstatus):
    out = os.environ["CREWGUARD_BENCH_PROBE"]
    with open(out, "w") as f:
        json.dump({"crewai": "crewai" in sys.modules,
                   "crewguard_loaded": session.config.pluginmanager.has_plugin("crewguard"),
                   "vcr": "vcr" in sys.modules}, f)
"""


def make_suite(root: Path, n_tests: int) -> None:
    (root / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    per_file = 10
    for start in range(0, n_tests, per_file):
        body = [
            f"def test_plain_{i}():\n    assert sum(range({i} + 1)) == {i} * ({i} + 1) // 2\n"
            for i in range(start, min(start + per_file, n_tests))
        ]
        (root / f"test_plain_{start // per_file}.py").write_text("\n\n".join(body))
    # An empty ini file pins the rootdir here, away from any project configuration.
    (root / "pytest.ini").write_text("[pytest]\n")


def run_once(root: Path, with_plugin: bool, n_tests: int) -> tuple[float, float, dict[str, bool]]:
    """One pytest subprocess: (wall seconds, CPU seconds of the child, probe)."""
    probe = root / "probe.json"
    probe.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if not with_plugin:
        cmd += ["-p", "no:crewguard"]
    env = dict(os.environ, CREWGUARD_BENCH_PROBE=str(probe))
    env.pop("PYTEST_ADDOPTS", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0 or f"{n_tests} passed" not in done.stdout:
        raise SystemExit(f"pytest run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return took, cpu, json.loads(probe.read_text())


def spread(values: list[float]) -> str:
    return f"{min(values):.3f}..{max(values):.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tests", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--threshold", type=float, default=0.3, help="seconds")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="crewguard-overhead-") as tmp:
        root = Path(tmp)
        make_suite(root, args.tests)
        run_once(root, True, args.tests)  # warm the file system and bytecode caches for both
        run_once(root, False, args.tests)
        # wall/cpu -> variant ("plugin" or "bare") -> seconds per repetition
        seconds: dict[str, dict[str, list[float]]] = {
            "wall": {"plugin": [], "bare": []},
            "cpu": {"plugin": [], "bare": []},
        }
        probes: list[dict[str, bool]] = []
        for i in range(args.repeat):
            # Alternate which variant goes first in each pair, so neither always runs second.
            order = (True, False) if i % 2 == 0 else (False, True)
            for with_plugin in order:
                took, cpu, probe = run_once(root, with_plugin, args.tests)
                name = "plugin" if with_plugin else "bare"
                seconds["wall"][name].append(took)
                seconds["cpu"][name].append(cpu)
                if with_plugin:
                    probes.append(probe)
                elif probe["crewguard_loaded"]:
                    raise SystemExit("-p no:crewguard did not disable the plugin")

    if not all(p["crewguard_loaded"] for p in probes):
        raise SystemExit("the plugin was not loaded in the plugin runs: is pytest-crewguard installed?")
    crewai_imported = any(p["crewai"] for p in probes)
    vcr_imported = any(p["vcr"] for p in probes)
    print(f"pytest runs of {args.tests} plain tests, fresh subprocess each, {args.repeat} interleaved pairs")
    print(f"python {sys.version.split()[0]}, nproc {os.cpu_count()}")
    print(f"{'':<30}{'median s':>10}{'min..max s':>16}")
    summary: dict[str, float] = {}
    for kind in ("wall", "cpu"):
        plugin, bare = seconds[kind]["plugin"], seconds[kind]["bare"]
        diffs = [a - b for a, b in zip(plugin, bare, strict=True)]
        med_diff = statistics.median(diffs)
        summary[f"{kind}_diff"] = med_diff
        print(f"{kind + ', with crewguard':<30}{statistics.median(plugin):>10.3f}{spread(plugin):>16}")
        print(f"{kind + ', -p no:crewguard':<30}{statistics.median(bare):>10.3f}{spread(bare):>16}")
        print(f"{kind + ', difference (paired)':<30}{med_diff:>+10.3f}{spread(diffs):>16}")
        print(
            f"{kind + ', ratio of medians':<30}{statistics.median(plugin) / statistics.median(bare):>10.3f}"
        )
        paired = statistics.median(a / b for a, b in zip(plugin, bare, strict=True))
        summary[f"{kind}_ratio"] = paired
        print(f"{kind + ', ratio (paired, median)':<30}{paired:>10.3f}")
    print(f"crewai imported with the plugin: {crewai_imported}; vcr imported: {vcr_imported}")
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "crewai_imported": crewai_imported}, indent=2))
    med_diff = summary["wall_diff"]
    failed = False
    if med_diff >= args.threshold:
        print(f"FAIL: the plugin costs {med_diff:.3f} s (threshold {args.threshold} s)")
        failed = True
    if crewai_imported:
        print("FAIL: the plugin imported crewai in a run without crew tests")
        failed = True
    if not failed:
        print(f"OK: median overhead {med_diff:+.3f} s < {args.threshold} s, crewai not imported")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
