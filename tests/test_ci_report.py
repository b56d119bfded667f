"""The CI surface on report data, in-process: the versioned JSON report and its schema, the
comparison rules, the Markdown summary, JUnit properties, and merging shard reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.baseline import compare, load_baseline, parse_compare_fail
from pytest_crewguard.cli import main
from pytest_crewguard.commands.check import check_lines
from pytest_crewguard.commands.merge import merge_reports
from pytest_crewguard.errors import ConfigError
from pytest_crewguard.markdown import markdown, write_markdown
from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.report_file import check_report, report_schema, schema_errors
from pytest_crewguard.run_state import junit_properties

from .ci_reports import record, report


def _write(path: Path, data: dict[str, Any]) -> str:
    path.write_text(json.dumps(data))
    return str(path)


# -- the report and its schema ----------------------------------------------------------------


def test_report_is_versioned_and_valid_against_the_shipped_schema() -> None:
    data = report(record("t.py::a", unpriced_models=["mystery-1"], cost_exact=False),
                  record("t.py::b", failed_gates=["max_cost"], outcome="failed"), budget=0.015)
    assert data["schema"] == "crewguard-report/1"
    assert data["crewguard"] and data["crewai"] and data["prices"].startswith("genai-prices")
    assert schema_errors(data) == []
    assert data["budget"] == {"max_cost": 0.015, "verdict": "over", "over_by": pytest.approx(0.005),
                              "problem": data["budget"]["problem"]}
    assert "mystery-1" in data["budget"]["problem"]
    totals = data["totals"]
    assert (totals["cost"], totals["tokens"], totals["llm_calls"], totals["failed"]) == (0.02, 2000, 2, 1)
    assert totals["unpriced_models"] == ["mystery-1"]
    b = data["tests"]["t.py::b"]
    assert (b["verdict"], b["cassette"]) == ("FAILED max_cost", "cassettes/b.yaml")
    assert b["limits"] == {"max_cost": 0.05}


def test_schema_catches_a_broken_report() -> None:
    data = report(record("t.py::a"))
    data["totals"]["cost"] = "cheap"
    del data["tests"]["t.py::a"]["calls"]
    errors = schema_errors(data)
    assert any(e.startswith("totals/cost:") for e in errors)
    assert any("'calls' is a required property" in e for e in errors)
    with pytest.raises(ConfigError, match=r"not a valid crewguard-report/1 report: .*totals/cost"):
        check_report(data, "r.json")


def test_a_newer_schema_is_refused_with_the_fix() -> None:
    data = report(record("t.py::a"))
    data["schema"] = "crewguard-report/2"
    with pytest.raises(ConfigError, match="upgrade pytest-crewguard"):
        check_report(data, "r.json")


def test_the_schema_admits_added_fields() -> None:
    # The compatibility rule: within /1 fields are only added, so readers ignore unknown ones.
    data = report(record("t.py::a"))
    data["html"] = "report.html"
    data["tests"]["t.py::a"]["flakiness"] = 0
    assert schema_errors(data) == []
    assert report_schema()["properties"]["schema"] == {"const": "crewguard-report/1"}


def test_an_unversioned_report_still_loads_as_a_baseline(tmp_path: Path) -> None:
    old = {"version": 1, "prices": "genai-prices 0.2.3", "budget": None,
           "totals": {"tests": 1, "cost": 0.01, "tokens": 1000, "llm_calls": 1},
           "tests": {"t.py::a": {"nodeid": "t.py::a", "cost": 0.01, "tokens": 1000, "llm_calls": 1}}}
    baseline = load_baseline(Path(_write(tmp_path / "old.json", old)))
    found = compare(baseline, report(record("t.py::a", cost=0.02)), parse_compare_fail("cost:10%"))
    assert found.regressions[0] == "t.py::a: cost $0.010000 -> $0.020000 (+100.0%; allowed cost:10%)"


# -- comparison -------------------------------------------------------------------------------


def test_a_cost_regression_names_the_test_and_the_growth(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    base = _write(tmp_path / "base.json", report(record("t.py::a", cost=0.010)))
    new = _write(tmp_path / "new.json", report(record("t.py::a", cost=0.013)))
    assert main(["compare", base, new, "--fail", "cost:10%"]) == 1
    out = capsys.readouterr().out
    assert "crewguard: regression: t.py::a: cost $0.010000 -> $0.013000 (+30.0%; allowed cost:10%)" in out
    assert main(["compare", base, new, "--fail", "cost:50%"]) == 0
    assert "regression" not in capsys.readouterr().out


def test_absolute_rules_and_time_and_max_iter_hits() -> None:
    base = report(record("t.py::a", cost=0.010, projected_s=10.0, max_iter_hits=0))
    new = report(record("t.py::a", cost=0.013, projected_s=13.0, max_iter_hits=1))
    assert compare(base, new, parse_compare_fail("cost:0.005,time:50%,max_iter_hits:1")).regressions == []
    found = compare(base, new, parse_compare_fail("cost:0.001,time:20%,max_iter_hits:0")).regressions
    assert [line.split(": ", 1)[1].split(" ")[0] for line in found if line.startswith("t.py")] == [
        "cost", "projected_s", "max_iter_hits"
    ]
    assert "10.00s -> 13.00s (+30.0%; allowed projected_s:20%)" in found[1]


def test_projected_time_jitter_is_not_listed_as_a_change() -> None:
    base = report(record("t.py::a", projected_s=10.0))
    assert compare(base, report(record("t.py::a", projected_s=10.4))).lines() == []
    assert compare(base, report(record("t.py::a", projected_s=12.0))).lines() == [
        "t.py::a: projected_s 10.00s -> 12.00s (+20.0%)", "TOTAL: projected_s 10.00s -> 12.00s (+20.0%)"
    ]


def test_no_recorded_latency_is_not_a_time_regression() -> None:
    base = report(record("t.py::a", projected_s=None))
    now = report(record("t.py::a", projected_s=5.0))
    assert compare(base, now, parse_compare_fail("time:0")).regressions == []


def test_new_removed_improved_and_verdict_changes_are_listed() -> None:
    base = report(record("t.py::kept", cost=0.02), record("t.py::gone"))
    new = report(record("t.py::kept", cost=0.01, failed_gates=["output"], outcome="failed"),
                 record("t.py::added"))
    lines = compare(base, new).lines()
    assert "t.py::added: new since the baseline" in lines
    assert "t.py::gone: removed since the baseline" in lines
    assert "t.py::kept: verdict passed -> FAILED output" in lines
    assert "t.py::kept: cost $0.020000 -> $0.010000 (-50.0%) (better)" in lines
    # An output that stopped validating is a regression to a failed_gates:0 rule.
    assert compare(base, new, parse_compare_fail("failed_gates:0")).regressions == [
        "t.py::kept: failed_gates 0 -> 1 (new; allowed failed_gates:0)"
    ]


@pytest.mark.parametrize(("rule", "problem"), [
    ("time", "expected metric:limit"), ("cost:inf", "not a number"), ("speed:1", "unknown metric 'speed'"),
])
def test_bad_rules_name_the_part(rule: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_compare_fail(rule)


# -- Markdown, step summary, JUnit ------------------------------------------------------------


def test_markdown_lists_table_budget_regressions_and_unpriced_models() -> None:
    base = report(record("t.py::a[x|y]", cost=0.010))
    data = report(record("t.py::a[x|y]", cost=0.013, failed_gates=["max_cost"], outcome="failed",
                         limits={"max_cost": 0.012}),
                  record("t.py::b", cost=0.0, unpriced_models=["mystery-1"], cost_exact=False), budget=0.01)
    text = markdown(data, compare(base, data, parse_compare_fail("cost:10%")))
    assert "| t.py::a[x\\|y] " in text  # a pipe in a test id stays in its cell
    assert "| **TOTAL (2 tests)** " in text
    assert "**Session budget: ≥$0.013000 of $0.010000 (OVER by $0.003000)**" in text
    assert "### Over budget" in text and "`t.py::a[x|y]`: $0.013000 of max_cost $0.012000" in text
    assert "### Regressions" in text and "(+30.0%; allowed cost:10%)" in text
    assert "t.py::b: new since the baseline" in text
    assert "### Unpriced models" in text and "- `mystery-1`" in text


def test_step_summary_is_appended_unless_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert write_markdown("## crewguard\n", tmp_path / "out" / "s.md", step_summary=True) == [
        tmp_path / "out" / "s.md", summary]
    assert summary.read_text() == "earlier step\n## crewguard\n\n"
    assert write_markdown("## again\n", None, step_summary=False) == []
    assert "again" not in summary.read_text()


def test_step_summary_options(pytester: pytest.Pytester) -> None:
    from pytest_crewguard.options import settings_from_config

    assert settings_from_config(pytester.parseconfig()).step_summary is True
    assert settings_from_config(pytester.parseconfig("--crewguard-no-step-summary")).step_summary is False
    pytester.makeini("[pytest]\ncrewguard_step_summary = false\ncrewguard_markdown = out/summary.md\n")
    settings = settings_from_config(pytester.parseconfig())
    assert settings.step_summary is False
    assert settings.markdown == pytester.path / "out" / "summary.md"


def test_junit_properties() -> None:
    props = dict(junit_properties(record("t.py::a", cost=0.00054, tokens=1200, max_iter_hits=2,
                                         projected_s=3.25)))
    assert props == {"crewguard_cost_usd": "0.000540", "crewguard_tokens": 1200, "crewguard_llm_calls": 1,
                     "crewguard_max_iter_hits": 2, "crewguard_projected_s": "3.250"}
    assert dict(junit_properties(record("t.py::a", projected_s=None)))["crewguard_projected_s"] == ""


# -- shards -----------------------------------------------------------------------------------


def test_merge_recomputes_totals_and_keeps_the_schema() -> None:
    a = report(record("t.py::a", cost=0.1, tokens=1000), record("t.py::b", cost=0.2, tokens=10))
    b = report(record("t.py::c", cost=0.0000004, tokens=7, usage_unknown=1, cost_exact=False))
    merged = merge_reports([("a.json", a), ("b.json", b)])
    whole = report(record("t.py::a", cost=0.1, tokens=1000), record("t.py::b", cost=0.2, tokens=10),
                   record("t.py::c", cost=0.0000004, tokens=7, usage_unknown=1, cost_exact=False))
    assert merged["totals"] == whole["totals"]
    assert merged["totals"]["cost"] == 0.3000004  # summed past float noise, like one run's
    assert merged["merged_from"] == ["a.json", "b.json"]
    assert schema_errors(merged) == []


def test_merge_refuses_overlaps_and_different_prices() -> None:
    a = report(record("t.py::a"))
    with pytest.raises(ConfigError, match=r"t.py::a is in both a.json and b.json"):
        merge_reports([("a.json", a), ("b.json", report(record("t.py::a")))])
    other = report(record("t.py::b"), prices=PriceTable({}, source="prices.yaml"))
    with pytest.raises(ConfigError, match=r"different price data .*prices\.yaml"):
        merge_reports([("a.json", a), ("b.json", other)])


def test_check_applies_the_budget_and_the_baseline() -> None:
    data = report(record("t.py::a", cost=0.013), record("t.py::b", cost=0.002))
    lines, failed = check_lines(data, max_cost=0.01)
    assert failed
    assert lines[-1] == ("crewguard: session cost $0.015000 is over --max-cost=$0.010000 by "
                         "$0.005000; failing the run even though the tests passed.")
    assert check_lines(data, max_cost=0.02)[1] is False
    base = report(record("t.py::a", cost=0.010), record("t.py::b", cost=0.002))
    lines, failed = check_lines(data, 0.02, base, parse_compare_fail("cost:10%"))
    assert failed
    assert "crewguard: regression: t.py::a: cost $0.010000 -> $0.013000 (+30.0%; allowed cost:10%)" in lines


# -- what a comparison cannot count ------------------------------------------------------------


def _without_usage(nodeid: str) -> Any:
    """A test whose one call came back without usage: cost and tokens count nothing of it."""
    call = {"model": "gpt-4o-mini", "provider": "openai", "input_tokens": None, "output_tokens": None,
            "cached_tokens": None, "cache_write_tokens": None, "reasoning_tokens": None, "cost": None,
            "priced": True, "usage_known": False}
    return record(nodeid, cost=0.0, tokens=0, calls=[call], usage_unknown=1, cost_exact=False)


def test_unknown_cost_and_tokens_are_not_compared_and_fail_a_rule_on_them(tmp_path: Path) -> None:
    base = report(record("t.py::a", cost=0.0005, tokens=2925))
    now = report(_without_usage("t.py::a"))
    assert schema_errors(now) == []  # what the plugin writes for such a call is a valid report
    found = compare(base, now, parse_compare_fail("cost:0%,tokens:0,llm_calls:0"))
    assert [line.split(" unknown")[0] for line in found.regressions] == [
        "t.py::a: cost", "t.py::a: tokens", "TOTAL: cost", "TOTAL: tokens"
    ]
    assert "calls without usage in this run, so it cannot be held to cost:0%" in found.regressions[0]
    lines = found.lines()
    assert not any("better" in line or "$0.000000" in line for line in lines), lines
    assert "t.py::a: cost not compared (unknown: calls without usage)" in lines
    # Read back from files, as `crewguard compare` and --crewguard-baseline read them.
    code = main(["compare", _write(tmp_path / "b.json", base), _write(tmp_path / "n.json", now),
                 "--fail", "cost:0%"])
    assert code == 1


def test_an_unpriced_model_in_the_baseline_is_named_not_compared() -> None:
    base = report(record("t.py::a", cost=0.0, unpriced_models=["acme-1"], cost_exact=False))
    lines = compare(base, report(record("t.py::a", cost=0.01))).lines()
    assert "t.py::a: cost not compared (unknown: no price for acme-1 in the baseline)" in lines
    assert not any(line.startswith("t.py::a: cost $") for line in lines)


def test_a_metric_the_baseline_lacks_is_not_compared() -> None:
    old = report(record("t.py::a"))
    for entry in (old["tests"]["t.py::a"], old["totals"]):
        del entry["tool_calls"], entry["projected_s"]
    now = report(record("t.py::a", tool_calls=3, projected_s=19.0))
    assert compare(old, now, parse_compare_fail("tool_calls:0,time:20%")).regressions == []
    assert not any("tool_calls" in line or "projected_s" in line for line in compare(now, old).lines())


@pytest.mark.parametrize(("text", "problem"), [
    ('{"tests": {}, "totals": {"cost": NaN}}', "holds NaN, which is not a number crewguard writes"),
    ('{"tests": {}, "totals": {"cost": -Infinity}}', "holds -Infinity"),
    ('{"tests": {"t.py::a": {"cost": 9.99}, "t.py::a": {"cost": 0}}, "totals": {}}',
     "the key 't.py::a' appears twice"),
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
])
def test_a_report_no_crewguard_wrote_is_refused_naming_why(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "odd.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem):
        load_baseline(path)


def test_a_baseline_that_is_a_directory_says_so(pytester: pytest.Pytester) -> None:
    pytester.mkdir("reports")
    result = pytester.runpytest("--crewguard-baseline=reports")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--crewguard-baseline='reports': * is a directory; give the report file in it"]
    )


def test_merge_refuses_shards_checked_against_different_budgets() -> None:
    a, b = report(record("t.py::a")), report(record("t.py::b"), budget=0.001)
    with pytest.raises(ConfigError, match=r"different session budgets \(a.json: none, b.json: \$0.001\)"):
        merge_reports([("a.json", a), ("b.json", b)])


# -- writing ----------------------------------------------------------------------------------


def test_a_report_is_written_through_a_symlink_and_never_over_a_device(tmp_path: Path) -> None:
    from pytest_crewguard.persister import atomic_write

    (tmp_path / "real.json").write_text("old")
    (tmp_path / "link.json").symlink_to("real.json")
    atomic_write(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"
    (tmp_path / "fifo").mkdir()
    with pytest.raises(OSError, match="a directory, not replaced"):
        atomic_write(tmp_path / "fifo", "x")
    assert (tmp_path / "fifo").is_dir()


def test_a_lone_surrogate_from_a_model_is_written_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    from pytest_crewguard.persister import atomic_write

    atomic_write(tmp_path / "r.html", "answer \ud83d here")
    assert (tmp_path / "r.html").read_text(encoding="utf-8") == "answer \\ud83d here"
    data = report(record("t.py::a\ud800"))
    assert main(["report", _write(tmp_path / "s.json", data)]) == 0
    assert "t.py::a\\ud800" in capsys.readouterr().out


def test_recorded_text_reaches_table_and_markdown_without_escapes_or_html() -> None:
    from pytest_crewguard.report import table
    from pytest_crewguard.report_file import session_from_report

    model = "acme<img src=x onerror=alert(1)>\x1b[2J-7"
    data = report(record("t.py::a", cost=0.0, unpriced_models=[model], cost_exact=False))
    shown = table(session_from_report(data))
    assert "\x1b" not in shown and "acme<img src=x onerror=alert(1)>\\x1b[2J-7" in shown
    text = markdown(data)
    assert "<img" not in text.replace("`acme<img", "")  # only inside a code span, shown as text
    assert "acme&lt;img src=x onerror=alert(1)&gt;\\x1b[2J-7" in text  # in the table's cell
    assert "- `acme<img src=x onerror=alert(1)>\\x1b[2J-7`" in text and "\x1b" not in text


@pytest.mark.parametrize("rules", [" ", ",", " , "])
def test_rules_with_no_rule_in_them_are_refused_not_read_as_none(rules: str) -> None:
    with pytest.raises(ConfigError, match=r"no rule in it; e\.g\. cost:10%"):
        parse_compare_fail(rules, "--fail")


def test_check_names_the_budget_as_it_was_given_and_caps_it_like_the_plugin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "r.json", report(record("t.py::a", cost=0.01)))
    assert main(["check", path, "--max-cost=0"]) == 1
    assert "is over --max-cost=$0.000000 by $0.010000" in capsys.readouterr().out
    assert main(["check", path, "--max-cost=1e300"]) == 2
    assert "expected a USD amount >= 0 and at most 1e+09" in capsys.readouterr().err


def test_calls_outside_any_run_are_projected_from_their_recorded_latencies() -> None:
    # A direct LLM.call() in a test: no run, and the table said "projected n/a: calls without a
    # recorded latency (cassettes recorded by another tool)" of a cassette crewguard recorded.
    from pytest_crewguard.ledger import LLMCall
    from pytest_crewguard.report import table
    from pytest_crewguard.session import CrewguardSession, GuardedTest

    def call(latency: float | None) -> LLMCall:
        return LLMCall(provider="openai", model="gpt-4o-mini", agent=None, task=None, input_tokens=10,
                       output_tokens=2, cached_tokens=0, reasoning_tokens=0, cost=0.00001,
                       recorded_latency_s=latency, forced_final_answer=False, url="http://x/v1/chat/completions",
                       status=200, agent_round=False, kickoff_id=None)

    direct = GuardedTest.build("t.py::direct", [call(0.4), call(0.6)], [])
    assert direct.projected_s == pytest.approx(1.0)
    session = CrewguardSession(prices=PriceTable())
    session.add(direct)
    assert "projected n/a" not in table(session)
    assert GuardedTest.build("t.py::edited", [call(0.4), call(None)], []).projected_s is None
