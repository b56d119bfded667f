"""Shared test support: a scripted provider per test and crew test files for pytester.

Tests run real CrewAI crews over real HTTP against the scripted provider on 127.0.0.1, record
cassettes through the plugin in a pytester sandbox, stop the provider, and replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.testing.scripted_provider import Reply, ScriptedProvider

# A fake key of the real shape: recordings made with it must not contain it.
FAKE_OPENAI_KEY = "sk-proj-Zq8vW2mN4xR7tY1uI3oP5aS6dF9gH0jK2lL4zX6cV8bN"
FAKE_ANTHROPIC_KEY = "sk-ant-api03-Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz1Xc3Vb5Nm7Qw9Er1Ty3Ui5Op7"

# Sample projects and recordings the tests copy into pytester sandboxes, not tests of this run.
collect_ignore_glob = ["data/*"]


@pytest.fixture(scope="session")
def crewai_loaded() -> None:
    """Import crewai once, after the plugin has set its environment.

    pytester's in-process runs unload what they imported; numpy (under crewai) cannot be
    loaded twice in one process, so crewai has to be imported by the outer session.
    """
    import crewai  # noqa: F401

    # The same for vcrpy and the modules that use its exception classes: two copies of
    # vcrpy in one process would not recognise each other's exceptions.
    import pytest_crewguard.guard
    import pytest_crewguard.vcr_setup  # noqa: F401


@pytest.fixture(scope="session")
def lancedb_loaded(crewai_loaded: None) -> None:
    """Import CrewAI's memory storage (LanceDB) once, before any pytester run: a Flow or a crew
    with memory builds one, and LanceDB's native module cannot be initialised twice in one
    process (pytester's in-process runs, and the test around them, unload what they import)."""
    import crewai.memory.storage.lancedb_storage  # noqa: F401
    import lancedb  # noqa: F401


@pytest.fixture
def provider(crewai_loaded: None) -> Iterator[Callable[..., ScriptedProvider]]:
    """Start scripted providers; every one started is stopped after the test."""
    started: list[ScriptedProvider] = []

    def start(script: Any, **kwargs: Any) -> ScriptedProvider:
        server = ScriptedProvider(script, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        try:
            server.stop()
        except OSError:
            pass


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under GitHub Actions every sandboxed run would append its table to this suite's summary.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture(autouse=True)
def _fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)


CREW_HEADER = '''
import json, os
import pytest
from pydantic import BaseModel
from crewai import Agent, Crew, LLM, Task
from crewai.tools import tool

BASE_URL = {base_url!r}
MODEL = {model!r}


def make_llm():
    return LLM(model=MODEL, base_url=BASE_URL)


def make_crew(description="Research {{topic}} and summarise it", max_iter=25, tools=()):
    agent = Agent(role="Researcher", goal="Research the topic", backstory="Expert researcher",
                  llm=make_llm(), tools=list(tools), max_iter=max_iter)
    task = Task(name="research", description=description,
                expected_output="A concise research summary", agent=agent)
    return Crew(agents=[agent], tasks=[task])


def dump(run, name):
    """Write what a run produced, for the outer test to compare record and replay."""
    data = {{"raw": run.output.raw if run.output else None, "cost": run.cost,
            "tokens": run.tokens, "llm_calls": run.llm_calls,
            "calls": [{{k: v for k, v in vars(c).items() if k not in ("recorded_latency_s", "kickoff_id")}}
                      for c in run.calls],
            "iterations": {{f"{{a}}/{{t}}": n for (a, t), n in run.iterations.items()}},
            "max_iter_hits": [list(p) for p in run.max_iter_hits],
            "projected_s": run.projected_s, "elapsed_s": run.elapsed_s}}
    with open(os.path.join(os.path.dirname(__file__), name + ".json"), "w") as f:
        json.dump(data, f)
'''


def crew_test_file(base_url: str, body: str, model: str = "gpt-4o-mini") -> str:
    """Source of a test module: the crew helpers above, then ``body``."""
    return CREW_HEADER.format(base_url=base_url, model=model) + "\n" + textwrap.dedent(body)


def recorded_then_replayed(
    pytester: pytest.Pytester, server: Any, *options: str, in_subprocess: bool = False
) -> Iterator[pytest.RunResult]:
    """Run the session recording (``once``), stop the provider, run it again replaying: the
    result of each, so one check covers both."""
    for mode in ("once", "none"):
        given = (f"--crewguard-record-mode={mode}", *options)
        # Generous, in a process of its own: it must end, not end fast.
        if in_subprocess:
            result = pytester.runpytest_subprocess(*given, timeout=150)
        else:
            result = pytester.runpytest(*given)
        server.stop()  # replay must not reach it
        yield result


def read_dump(pytester: pytest.Pytester, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((Path(pytester.path) / f"{name}.json").read_text())
    return data


def answer(text: str, input_tokens: int = 1200, output_tokens: int = 300, **kwargs: Any) -> Reply:
    return Reply(text=text, input_tokens=input_tokens, output_tokens=output_tokens, **kwargs)


@dataclass(frozen=True)
class ExampleRun:
    """The example suite replayed once in a subprocess with every report crewguard writes."""

    folder: Path
    report: dict[str, Any]
    stdout: str

    @property
    def html(self) -> Path:
        return self.folder / "report.html"


def run_example(folder: Path, *args: str, summary: Path | None = None) -> subprocess.Popen[str]:
    """Start the example suite in a subprocess writing ``folder/<name>.json`` reports."""
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    if summary is not None:
        env["GITHUB_STEP_SUMMARY"] = str(summary)
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "fixtures/example", "-p", "no:cacheprovider", "-q", *args],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0, out[-4000:]
    return out


@pytest.fixture(scope="session")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """One replay of the example suite shared by the report, HTML, CLI and CI tests (each run
    imports crewai again: running it once per worker keeps the suite fast)."""
    folder = tmp_path_factory.mktemp("example-run")
    (folder / "summary.md").write_text("## tests\n")
    out = finished(
        run_example(
            folder,
            f"--crewguard-report={folder / 'report.json'}",
            f"--crewguard-html={folder / 'report.html'}",
            f"--crewguard-markdown={folder / 'crewguard.md'}",
            f"--junitxml={folder / 'junit.xml'}",
            summary=folder / "summary.md",
        )
    )
    return ExampleRun(folder, json.loads((folder / "report.json").read_text()), out)
