"""Bad numbers, paths that leave the project, and broken price files: usage errors up front."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from pytest_crewguard.cassette_location import cassette_path, check_inside
from pytest_crewguard.errors import ConfigError
from pytest_crewguard.marker import spec_from_marker
from pytest_crewguard.pricing import PriceTable

NUMBERS = ["max_cost", "max_seconds", "max_tokens", "max_llm_calls", "max_memory_growth", "repeat"]


@pytest.mark.parametrize("name", NUMBERS)
@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, 10**400, 1e300], ids=["nan", "inf", "-inf", "10**400", "1e300"]
)
def test_non_finite_or_absurd_numbers_are_refused_naming_the_argument_and_an_example(name, value):
    with pytest.raises(ConfigError) as refused:
        spec_from_marker((), {name: value}, "test_m.py::test_x")
    message = str(refused.value)
    assert f"argument {name}=" in message and f"e.g. {name}=" in message
    assert len(message) < 300  # a 400-digit number is not printed whole


def test_sensible_numbers_still_pass():
    spec = spec_from_marker(
        (), {"max_cost": 0.05, "max_seconds": 60, "max_tokens": 20000, "repeat": 3}, "test_m.py::test_x"
    )
    assert (spec.max_cost, spec.max_seconds, spec.max_tokens, spec.repeat) == (0.05, 60.0, 20000, 3)


@pytest.mark.parametrize("override", ["../../x.yaml", "a/../../x.yaml", "/etc/crewguard.yaml", ".."])
def test_a_marker_cassette_outside_the_cassette_dir_is_refused(tmp_path, override):
    cassettes = tmp_path / "cassettes"
    with pytest.raises(ConfigError) as refused:
        spec_from_marker((), {"cassette": override}, "t.py::t", cassette_dir=cassettes)
    message = str(refused.value)
    assert f"cassette={override!r}" in message and "outside the cassette dir" in message
    assert 'e.g. cassette="shared/research.yaml"' in message


def test_a_symlink_inside_the_cassette_dir_cannot_lead_out(tmp_path):
    cassettes = tmp_path / "cassettes"
    cassettes.mkdir()
    (cassettes / "escape").symlink_to(tmp_path.parent)
    with pytest.raises(ConfigError, match="outside the cassette dir"):
        check_inside(cassettes, "escape/x.yaml")


def test_paths_inside_the_cassette_dir_are_fine_wherever_the_dir_is(tmp_path):
    elsewhere = tmp_path.parent / "anywhere-the-user-says"  # outside the project: allowed
    assert check_inside(elsewhere, "shared/x.yaml") == elsewhere / "shared" / "x.yaml"
    assert check_inside(elsewhere, str(elsewhere / "y.yaml")) == elsewhere / "y.yaml"
    assert check_inside(elsewhere, "a/../b.yaml") == elsewhere / "a/../b.yaml"


def test_a_test_file_outside_the_rootdir_still_gets_a_cassette_inside_the_dir(tmp_path):
    cassettes = tmp_path / "cassettes"
    path = cassette_path(cassettes, "../other/test_x.py::test_y")
    assert cassettes.resolve() in Path(os.path.realpath(path)).parents


def test_an_over_long_test_name_gets_a_short_stable_distinct_file_name(tmp_path):
    # Recording paid for the calls, then the write failed: "File name too long".
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    path_a = cassette_path(tmp_path, f"test_m.py::test_x[{long_a}]")
    path_b = cassette_path(tmp_path, f"test_m.py::test_x[{long_b}]")
    assert len(path_a.name.encode()) <= 255 and len(path_b.name.encode()) <= 255
    assert path_a != path_b and path_a == cassette_path(tmp_path, f"test_m.py::test_x[{long_a}]")
    assert path_a.name.startswith("test_x-aaaa") and path_a.suffix == ".yaml"
    path_a.parent.mkdir(parents=True)
    path_a.write_text("")  # the file system takes it
    assert cassette_path(tmp_path, "test_m.py::test_x[short]").name == "test_x-short.yaml"
    # A long name the file system holds keeps the name it always had: its cassette is found.
    fits = "b" * 240
    assert cassette_path(tmp_path, f"test_m.py::test_x[{fits}]").name == f"test_x-{fits}.yaml"


def test_two_tests_on_one_default_cassette_stop_the_run_naming_both(pytester):
    pytester.makepyfile(test_m="""
import pytest

@pytest.mark.crewguard
@pytest.mark.parametrize("topic", ["AI/agents", "AI agents"])
def test_topic(topic):
    pass

@pytest.mark.crewguard(cassette="own.yaml")
@pytest.mark.parametrize("topic", ["x/y", "x y"])
def test_own(topic):
    pass
""")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*crewguard: test_m.py::test_topic?AI/agents? and test_m.py::test_topic?AI agents? would "
         "record into one cassette, *test_topic-AI_agents.yaml: their names differ only in characters "
         "a file name cannot hold. Give them distinct ids*"]
    )


PLAIN_TEST = """
import pytest

@pytest.mark.crewguard({args})
def test_x():
    pass
"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('max_cost=float("nan")', "*argument max_cost=nan: expected a number >= 0*e.g. max_cost=0.05*"),
        ("max_seconds=float('inf')", "*argument max_seconds=inf*e.g. max_seconds=60*"),
        ("max_tokens=10**400", "*argument max_tokens=*digits)*e.g. max_tokens=20000*"),
        ("repeat=10**400", "*argument repeat=*e.g. repeat=3*"),
        ('output="missing.json"', "*argument output='missing.json'*cannot read*missing.json*e.g. output=*"),
        ('output={"type": "bogus"}',
         "*argument output={...}: this schema is not a valid JSON Schema: 'bogus' is not valid*(at type)"),
        ('cassette="../../x.yaml"', "*argument cassette='../../x.yaml'*outside the cassette dir*"),
    ],
)
def test_bad_marker_arguments_stop_the_run_at_collection(pytester, args, expected):
    pytester.makepyfile(test_m=PLAIN_TEST.format(args=args))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*crewguard: @pytest.mark.crewguard on test_m.py::test_x: {expected.lstrip('*')}"]
    )


def test_an_absolute_cassette_outside_the_project_is_refused(pytester, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "x.yaml"
    pytester.makepyfile(test_m=PLAIN_TEST.format(args=f"cassette={str(outside)!r}"))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*cassette={str(outside)!r}*outside the cassette dir*"])
    assert not outside.exists()


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-0.5", "lots"])
@pytest.mark.parametrize("where", ["option", "ini"])
def test_a_bad_session_budget_is_a_usage_error(pytester, value, where):
    pytester.makepyfile(test_m="def test_x():\n    pass\n")
    if where == "ini":
        pytester.makeini(f"[pytest]\ncrewguard_max_cost = {value}\n")
        result = pytester.runpytest()
        source = "ini crewguard_max_cost"
    else:
        result = pytester.runpytest(f"--crewguard-max-cost={value}")
        source = "--crewguard-max-cost"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{source}='{value}': expected a USD amount >= 0*e.g. 0.50*"])


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("prices.yaml", "m:\n  input: 1\n  output: 2\nm:\n  input: 3\n  output: 4\n",
         "key 'm' appears twice (line 4)"),
        ("prices.json", '{"m": {"input": 1, "output": 2}, "m": {"input": 3, "output": 4}}',
         "key 'm' appears twice"),
        ("prices.yaml", "m:\n  input: 1\n  input: 5\n  output: 2\n", "key 'input' appears twice"),
        ("prices.yaml", f"m:\n  input: {'9' * 400}\n  output: 2\n", "model 'm': key 'input' must be"),
        ("prices.json", f'{{"m": {{"input": 1, "output": {"9" * 400}}}}}', "model 'm': key 'output' must be"),
        ("prices.yaml", "m:\n  input: .nan\n  output: 2\n", "model 'm': key 'input' must be"),
        ("prices.yaml", "m:\n  input: 1\n  output: -2\n", "model 'm': key 'output' must be"),
    ],
)
def test_a_broken_price_file_names_the_file_and_key(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        PriceTable.from_file(path)
    message = str(refused.value)
    assert message.startswith(f"price file {path}: ") and expected in message
    assert len(message) < 400


def test_a_huge_price_is_a_usage_error_not_an_internal_error(pytester):
    pytester.makepyfile(test_m="def test_x():\n    pass\n")
    pytester.makefile(".yaml", prices=f"m:\n  input: {'9' * 400}\n  output: 2\n")
    result = pytester.runpytest("--crewguard-prices=prices.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*price file *prices.yaml: model 'm': key 'input' must be*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
