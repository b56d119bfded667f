"""Cost, token and call gates per test and for the session; usage errors for bad input."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import answer, crew_test_file

TWO_CALLS = """
@pytest.mark.crewguard({marker})
def test_research(crewguard):
    crewguard.kickoff(make_crew, inputs={{"topic": "AI agents"}})
    crewguard.kickoff(make_crew, inputs={{"topic": "memory"}})
"""


@pytest.fixture(scope="session")
def recordings() -> dict[str, Path]:
    """One recording of TWO_CALLS per model, made by the first test that needs it."""
    return {}


def _record(
    pytester: pytest.Pytester, provider, recordings: dict[str, Path], model: str = "gpt-4o-mini"
) -> None:
    """Put a recorded TWO_CALLS test (source and cassette) in the sandbox.

    The gates under test all read the same recording, so it is made once per model and copied:
    the copy names the same (stopped) provider URL its cassette was recorded against.
    """
    if model not in recordings:
        server = provider([answer("one"), answer("two", input_tokens=2000, output_tokens=500)])
        pytester.makepyfile(
            test_crew=crew_test_file(server.openai_base_url, TWO_CALLS.format(marker=""), model=model)
        )
        pytester.runpytest("--crewguard-record-mode=once", "-p", "no:warnings").assert_outcomes(passed=1)
        server.stop()
        kept = Path(tempfile.mkdtemp(prefix=f"gates-{model}-", dir=pytester.path.parent))
        shutil.copy(pytester.path / "test_crew.py", kept)
        shutil.copytree(pytester.path / "cassettes", kept / "cassettes")
        recordings[model] = kept
        return
    shutil.copy(recordings[model] / "test_crew.py", pytester.path)
    shutil.copytree(recordings[model] / "cassettes", pytester.path / "cassettes")


def _remark(pytester: pytest.Pytester, marker: str) -> None:
    path = Path(pytester.path) / "test_crew.py"
    source = path.read_text()
    start = source.index("@pytest.mark.crewguard(")
    end = source.index(")\n", start) + 1
    path.write_text(source[:start] + f"@pytest.mark.crewguard({marker})" + source[end:])


def test_a_test_over_max_cost_fails_with_cost_limit_and_top_calls(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    # 1200/300 tokens = $0.00036 and 2000/500 tokens = $0.0006 at gpt-4o-mini prices.
    _remark(pytester, "max_cost=0.0005")
    result = pytester.runpytest("-p", "no:warnings")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*cost $0.000960 is over max_cost=$0.000500 by $0.000460 (2 LLM calls); top calls:",
            "*$0.000600  gpt-4o-mini  Researcher / research  in=2000 out=500",
            "*$0.000360  gpt-4o-mini  Researcher / research  in=1200 out=300",
            "*test_crew.py::test_research*FAILED max_cost*",
        ]
    )


def test_the_test_passes_under_its_limits(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    _remark(pytester, "max_cost=0.001, max_tokens=4000, max_llm_calls=2")
    pytester.runpytest("-p", "no:warnings").assert_outcomes(passed=1)


def test_token_and_call_limits_fail_with_their_numbers(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    _remark(pytester, "max_tokens=3999, max_llm_calls=1")
    result = pytester.runpytest("-p", "no:warnings")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*4000 tokens are over max_tokens=3999*"])
    result.stdout.fnmatch_lines(["*2 LLM calls are over max_llm_calls=1*"])


def test_session_over_budget_exits_nonzero_though_every_test_passed(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    result = pytester.runpytest("-p", "no:warnings", "--crewguard-max-cost=0.0009")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*session budget: $0.000960 of $0.000900 (OVER by $0.000060)*",
            "*session cost $0.000960 is over --crewguard-max-cost=$0.000900 by $0.000060*",
        ]
    )
    within = pytester.runpytest("-p", "no:warnings", "--crewguard-max-cost=0.001")
    assert within.ret == pytest.ExitCode.OK


def test_session_budget_from_the_ini_file(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    pytester.makeini("[pytest]\ncrewguard_max_cost = 0.0001\n")
    result = pytester.runpytest("-p", "no:warnings")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*over --crewguard-max-cost=$0.000100*"])


def test_an_unpriced_model_is_an_error_under_a_cost_gate(pytester, provider, recordings):
    _record(pytester, provider, recordings, model="acme-llm-7")
    result = pytester.runpytest("-p", "no:warnings")
    result.assert_outcomes(passed=1)  # no gate: the table shows it unpriced, not $0
    result.stdout.fnmatch_lines(["*test_research*unknown (unpriced: acme-llm-7)*"])

    _remark(pytester, "max_cost=1.0")
    gated = pytester.runpytest("-p", "no:warnings")
    gated.assert_outcomes(failed=1)
    gated.stdout.fnmatch_lines(
        [
            "*max_cost=$1.000000 is set but these models have no price: acme-llm-7*--crewguard-prices*",
            "*acme-llm-7:",
            "*input: 0.15",
        ]
    )

    pytester.path.joinpath("prices.toml").write_text("[acme-llm-7]\ninput = 1.0\noutput = 2.0\n")
    priced = pytester.runpytest("-p", "no:warnings", "--crewguard-prices=prices.toml")
    priced.assert_outcomes(passed=1)
    # (1200 + 2000) input tokens at $1/M plus (300 + 500) output tokens at $2/M.
    priced.stdout.fnmatch_lines(
        ["*test_research*$0.004800*passed*", "*prices: genai-prices * + overrides from*"]
    )


def test_session_budget_with_an_unpriced_model_fails_the_run(pytester, provider, recordings):
    _record(pytester, provider, recordings, model="acme-llm-7")
    result = pytester.runpytest("-p", "no:warnings", "--crewguard-max-cost=1")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        ["*--crewguard-max-cost=$1.000000 is set but these models have no price: acme-llm-7*"]
    )


def test_json_report_holds_every_guarded_test(pytester, provider, recordings):
    _record(pytester, provider, recordings)
    pytester.runpytest("-p", "no:warnings", "--crewguard-report=out/report.json").assert_outcomes(passed=1)
    report = json.loads((Path(pytester.path) / "out" / "report.json").read_text())
    test = report["tests"]["test_crew.py::test_research"]
    assert (test["llm_calls"], test["input_tokens"], test["output_tokens"]) == (2, 3200, 800)
    assert test["cost"] == pytest.approx(0.00096)
    assert report["totals"]["cost"] == pytest.approx(0.00096)
    assert report["prices"].startswith("genai-prices")


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("max_cots=0.01", "*unknown argument 'max_cots' (did you mean 'max_cost'?)*"),
        ("max_cost=-1", "*argument max_cost=-1: expected a number >= 0*"),
        ("max_tokens=1.5", "*argument max_tokens=1.5: expected a whole number >= 0*"),
        ("repeat=0", "*argument repeat=0: expected a whole number at least 1*"),
        ("record_mode='sometimes'", "*argument record_mode='sometimes': expected one of none, once*"),
        ("output='schema.yaml'", "*argument output='schema.yaml': a schema file path must end in .json*"),
        ("0.01", "*positional arguments (0.01,) are not accepted*"),
    ],
)
def test_bad_marker_arguments_are_a_usage_error_naming_the_argument(pytester, marker, expected):
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.crewguard({marker})
        def test_x():
            pass
        """
    )
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*@pytest.mark.crewguard on test_bad_marker*::test_x: " + expected.lstrip("*")]
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--crewguard-record-mode=sometimes"],
            "*--crewguard-record-mode='sometimes': expected one of none*",
        ),
        (["--crewguard-max-cost=lots"], "*--crewguard-max-cost='lots': expected a USD amount >= 0*"),
        (["--crewguard-prices=nowhere.yaml"], "*--crewguard-prices='nowhere.yaml': no such file*"),
    ],
)
def test_bad_option_values_are_a_usage_error_naming_the_option(pytester, args, expected):
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_a_malformed_price_file_is_a_usage_error(pytester):
    pytester.makepyfile("import pytest\n\n@pytest.mark.crewguard\ndef test_x(crewguard):\n    pass\n")
    pytester.path.joinpath("prices.yaml").write_text("gpt-x:\n  input: cheap\n  output: 1\n")
    result = pytester.runpytest("--crewguard-prices=prices.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*prices.yaml*gpt-x*input*"])


def test_plain_tests_do_not_import_crewai_or_show_a_table(pytester):
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            # Nor crewguard's own marker, verdict or matching modules: a plain run loads the
            # options, the settings and the run's state, nothing it would not use.
            heavy = ("crewai", "vcr", "genai_prices", "pytest_crewguard.marker",
                     "pytest_crewguard.verdict", "pytest_crewguard.match_config")
            loaded = [m for m in heavy if m in sys.modules]
            open("loaded.txt", "w").write(",".join(loaded) or "none")
        """
    )
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert (Path(pytester.path) / "loaded.txt").read_text() == "none"
    assert "= crewguard =" not in result.stdout.str()


def test_importing_the_plugin_does_not_import_crewai(pytester):
    result = pytester.run(
        sys.executable,
        "-c",
        "import sys, pytest_crewguard.plugin; print('crewai' in sys.modules, 'vcr' in sys.modules)",
    )
    assert result.stdout.lines[-1] == "False False"


# Under xdist the controller merges the workers' ledgers and enforces the session budget: checked
# in the xdist session of tests/hostile/test_cassette_files.py, which records one cassette from
# two workers (one xdist session for both: each starts two processes that import CrewAI).


def test_an_expected_failure_is_xfail_in_the_table_and_fails_no_check(pytester, provider, recordings):
    # pytest said XFAIL while the table said FAILED max_cost, and `crewguard check` failed on it.
    from pytest_crewguard.cli import main

    _record(pytester, provider, recordings)
    _remark(pytester, "max_cost=0.0005")
    path = Path(pytester.path) / "test_crew.py"
    marker = "@pytest.mark.crewguard("
    path.write_text(path.read_text().replace(marker, "@pytest.mark.xfail\n" + marker, 1))
    result = pytester.runpytest("-p", "no:warnings", "--crewguard-report=r.json")
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*test_crew.py::test_research*XFAIL max_cost*"])
    report = json.loads((Path(pytester.path) / "r.json").read_text())
    assert report["tests"]["test_crew.py::test_research"]["xfailed"] is True
    assert report["totals"]["failed"] == 0
    assert main(["check", str(Path(pytester.path) / "r.json")]) == 0


def test_a_gate_failure_the_test_catches_still_fails_it(pytester, provider, recordings):
    # except BaseException around the kickoff: pytest said passed, the table FAILED max_cost.
    _record(pytester, provider, recordings)
    _remark(pytester, "max_cost=0.0005")
    path = Path(pytester.path) / "test_crew.py"
    source = path.read_text()
    start = source.index("    crewguard.kickoff(make_crew")
    body = source[start:]
    caught = "    try:\n" + "".join("    " + line + "\n" for line in body.splitlines()[:2]) + \
        "    except BaseException:\n        pass\n"
    path.write_text(source[:start] + caught + "\n".join(body.splitlines()[2:]))
    result = pytester.runpytest("-p", "no:warnings")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "crewguard: the test's code caught crewguard's failure and went on; the test fails on it all the "
        "same:",
        "crewguard: cost $0.000960 is over max_cost=$0.000500*",
    ])
