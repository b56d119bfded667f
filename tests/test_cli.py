"""The crewguard command, in-process: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_crewguard.cli import main

from .conftest import ExampleRun

DATA = Path(__file__).parent / "data" / "crewai_cassettes"
EXAMPLE = Path(__file__).parent.parent / "cassettes/fixtures/example/test_research_crew"


def test_show_prints_the_conversation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(EXAMPLE / "test_usage_in_bounds.yaml")]) == 0
    out = capsys.readouterr().out
    assert "system: You are Researcher." in out
    assert "tool call search_notes" in out
    assert "usage: in=738 out=22" in out
    assert "Total: 3 LLM calls" in out


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("llms/bedrock/test_bedrock_async_basic_call.yaml", "bedrock"),
        ("llms/anthropic/test_anthropic_streaming_cached_prompt_tokens.yaml", "anthropic"),
        ("llms/openai/test_openai_responses_api_streaming.yaml", "openai"),
        ("llms/google/test_google_async_streaming_returns_usage_metrics.yaml", "google"),
        ("utilities/test_converter_with_llama3_1_model.yaml", "ollama"),
        ("llms/azure/TestAzureResponsesCall.test_call_delegates_to_responses.yaml", "azure"),
    ],
)
def test_show_json_reads_each_provider(
    name: str, provider: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--json", str(DATA / name)]) == 0
    data = json.loads(capsys.readouterr().out)
    llm = [i for i in data["interactions"] if i["kind"] == "llm"]
    assert llm and all(i["provider"] == provider for i in llm)
    assert any(m["text"] for i in llm for m in i["messages"])
    assert any(i["reply"] and i["reply"]["text"] for i in llm)
    assert data["totals"]["llm_calls"] == len(llm)


def test_cost_totals_per_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--json", str(EXAMPLE)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in data["models"]] == ["gpt-4o-mini-2024-07-18"]
    assert data["total"]["cost"] > 0 and data["total"]["cost_exact"]
    assert len(data["files"]) == len(list(EXAMPLE.glob("*.yaml")))


def test_cost_lists_calls_without_usage_not_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", str(DATA / "utilities/test_llm_emits_stream_chunk_events.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Calls without usage (not counted, never $0)" in out


def test_price_file_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("gpt-4o-mini: {input: 1000000, output: 0}\n")
    assert main(["cost", "--json", "--prices", str(prices), str(EXAMPLE / "test_usage_in_bounds.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["cost"] == data["total"]["input_tokens"]


@pytest.mark.parametrize("command", ["show", "cost"])
def test_missing_file_is_a_usage_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err


CORRUPT = ["interactions: [\n  - {request: ", "interactions:\n- request: {}\n", "[1, 2]"]


@pytest.mark.parametrize("text", CORRUPT)
def test_corrupt_cassette_is_a_data_error(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["show", str(bad)]) == 1
    assert main(["cost", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "Traceback" not in err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["cost", "--prices", "/nonexistent.yaml", str(EXAMPLE)]) == 2


def test_module_runs_without_importing_crewai() -> None:
    code = (
        "import sys, runpy; sys.argv=['crewguard','--help']\n"
        "try: runpy.run_module('pytest_crewguard', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print('crewai' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": ""})
    assert out.stdout.strip().endswith("False")


def test_cost_of_the_example_cassettes_equals_the_ledger_of_their_run(
    example_run: ExampleRun, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).parent.parent
    report = example_run.folder / "report.json"
    ledger: dict[tuple[str, str], list[float]] = {}
    for test in json.loads(report.read_text())["tests"].values():
        for call in test["calls"]:
            sums = ledger.setdefault((call["provider"], call["model"]), [0, 0, 0, 0.0])
            sums[0] += 1
            sums[1] += call["input_tokens"]
            sums[2] += call["output_tokens"]
            sums[3] += call["cost"]

    assert main(["cost", "--json", str(root / "cassettes/fixtures/example")]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    offline = {
        (m["provider"], m["model"]): [m["llm_calls"], m["input_tokens"], m["output_tokens"], m["cost"]]
        for m in models
    }
    assert offline.keys() == ledger.keys()
    for key, (calls, tokens_in, tokens_out, cost) in ledger.items():
        assert offline[key][:3] == [calls, tokens_in, tokens_out]
        assert offline[key][3] == pytest.approx(cost, rel=1e-9)

    # `show` on each test's cassette totals what the ledger counted for that test.
    for test in json.loads(report.read_text())["tests"].values():
        assert main(["show", "--json", str(root / test["cassette"])]) == 0
        totals = json.loads(capsys.readouterr().out)["totals"]
        assert [totals["llm_calls"], totals["input_tokens"], totals["output_tokens"]] == [
            test["llm_calls"], test["input_tokens"], test["output_tokens"]
        ]
        assert totals["cost"] == pytest.approx(test["cost"], rel=1e-9)


def test_show_puts_other_traffic_on_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pytest_crewguard.persister import ReadableYamlSerializer

    def interaction(uri: str, body: str) -> dict:
        return {
            "request": {"method": "POST", "uri": uri, "body": "{}", "headers": {}},
            "response": {"status": {"code": 200, "message": "OK"},
                         "headers": {"content-type": ["application/json"]}, "body": {"string": body}},
        }

    cassette = tmp_path / "mixed.yaml"
    cassette.write_text(ReadableYamlSerializer.serialize({"version": 1, "interactions": [
        interaction("https://telemetry.crewai.com:4319/v1/traces", ""),
        interaction("https://api.openai.com/v1/chat/completions", json.dumps({
            "model": "gpt-4o-mini", "choices": [{"message": {"role": "assistant", "content": "Hi.\x1b[2J"}}],
        })),
    ]}))
    assert main(["show", str(cassette)]) == 0
    out = capsys.readouterr().out
    assert "#1 not an LLM call: POST https://telemetry.crewai.com:4319/v1/traces -> 200" in out
    assert "=> assistant: Hi.\\x1b[2J" in out and "\x1b" not in out  # a recorded escape, shown escaped
    assert "usage: unknown" in out and "calls without usage (not counted): #2" in out


def test_a_cassette_that_is_not_text_is_a_data_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert main(["show", str(binary)]) == 1
    err = capsys.readouterr().err
    assert "binary.yaml" in err and "Traceback" not in err


def test_cost_takes_relative_and_absolute_paths_together(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(Path(__file__).parent)
    assert main(["cost", "data/crewai_cassettes/llms/bedrock", str(EXAMPLE.resolve())]) == 0
    out = capsys.readouterr().out
    assert "test_bedrock_async_basic_call.yaml" in out and "test_usage_in_bounds.yaml" in out


EXAMPLE_CASSETTE = (
    Path(__file__).parent.parent / "cassettes/fixtures/example/test_research_crew/test_usage_in_bounds.yaml"
)


def _conflicted() -> str:
    # A merge conflict on one count: the markers land inside a quoted body, which still parses.
    lines = EXAMPLE_CASSETTE.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '\\"prompt_tokens\\": 738' in line)
    ours = lines[at]
    theirs = ours.replace("738", "9738")
    conflict = ["<<<<<<< HEAD\n", ours, "=======\n", theirs, ">>>>>>> other\n"]
    return "".join([*lines[:at], *conflict, *lines[at + 1:]])


@pytest.mark.parametrize(("text", "problem"), [
    ("", "it is empty"), ("\n  \n", "it is empty"), (None, "it holds git merge-conflict markers (line"),
])
def test_an_empty_or_conflicted_cassette_is_a_data_error_not_zero_calls(
    text: str | None, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(_conflicted() if text is None else text)
    assert main(["show", str(bad)]) == 1
    assert main(["cost", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"crewguard cannot load cassette {bad}: {problem}" in err and "Traceback" not in err


def test_a_folder_without_cassettes_is_a_usage_error_not_zero_dollars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.json").write_text('{"interactions": []}')
    assert main(["cost", str(tmp_path)]) == 2
    assert f"no cassettes in {tmp_path}" in capsys.readouterr().err
