"""Command-line options and ini keys, read and checked once per session."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from .errors import ConfigError
from .money import MAX_BUDGET
from .settings import RECORD_MODES, Settings

__all__ = ["Settings", "add_options", "settings_from_config"]

# (option, help). The ini key is the option's name with underscores: crewguard_record_mode.
OPTIONS: tuple[tuple[str, str], ...] = (
    ("record-mode", f"record mode: {', '.join(RECORD_MODES)} (default none: replay only, network blocked)"),
    ("cassette-dir", "cassette directory, relative to the rootdir (default cassettes)"),
    ("max-cost", "USD budget for the whole session: above it pytest exits non-zero"),
    ("prices", "YAML/TOML/JSON file of price overrides per model (USD per million tokens)"),
    ("report", "write the JSON report of guarded tests to this path"),
    ("html", "write a self-contained HTML report (table, then each run's timeline and messages) here"),
    ("baseline", "an earlier JSON report to compare this run with"),
    ("compare-fail", "regressions that fail the run, e.g. cost:10%,tokens:10%,llm_calls:0,time:20% "
     "or cost:0.01 (absolute)"),
    ("markdown", "write the Markdown summary to this path (also appended to $GITHUB_STEP_SUMMARY "
     "when that is set)"),
    ("allow-hosts", "comma-separated hosts (or host:port) a replayed test may reach, e.g. localhost:5432"),
)


# What `pytest --markers` shows. Here rather than in marker.py, which a run whose tests carry no
# crewguard marker never has to import.
MARKER_HELP = (
    "crewguard(cassette=None, max_cost=None, max_tokens=None, max_llm_calls=None, "
    "max_iterations=None, allow_max_iter=False, max_seconds=None, output=None, repeat=1, "
    "record_mode=None, max_memory_growth=None, allow_hosts=(), forbidden_tools=(), "
    "max_tool_calls=None, allow_tool_errors=False, faults=None, max_rpm=None): replay the "
    "test's crews from a cassette and fail it when a limit is crossed"
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("crewguard", "crewguard: CrewAI regression gates")
    for name, help_text in OPTIONS:
        group.addoption(
            f"--crewguard-{name}", dest=f"crewguard_{name.replace('-', '_')}", default=None, help=help_text
        )
        parser.addini(f"crewguard_{name.replace('-', '_')}", help_text, default=None)
    group.addoption(
        "--crewguard-no-step-summary", dest="crewguard_no_step_summary", action="store_true",
        default=False, help="do not append the Markdown summary to $GITHUB_STEP_SUMMARY",
    )
    parser.addini(
        "crewguard_step_summary", "append the Markdown summary to $GITHUB_STEP_SUMMARY when it is "
        "set (default true)", type="bool", default=True,
    )
    parser.addini(
        "crewguard_gc_freeze", "pause the garbage collector while pytest collects, and in a session "
        "with crew tests freeze the imported heap (gc.freeze), so that full collections skip "
        "CrewAI's modules (default true)",
        type="bool", default=True,
    )
    parser.addini(
        "crewguard_match_on",
        "vcrpy matcher names for cassettes recorded by other tools, e.g. method, scheme, host, port, "
        "path (default: method, URL and crewguard's normalised JSON body)",
        default=None,
    )


def _value(config: pytest.Config, name: str) -> tuple[Any, str]:
    key = f"crewguard_{name.replace('-', '_')}"
    cli = config.getoption(key)
    if cli is not None:
        return cli, f"--crewguard-{name}"
    ini = config.getini(key)
    return (ini or None), f"ini {key}"


def _mode(value: Any, source: str) -> str | None:
    if value is None:
        return None
    if value not in RECORD_MODES:
        raise ConfigError(f"{source}={value!r}: expected one of {', '.join(RECORD_MODES)}")
    return str(value)


def _path(config: pytest.Config, value: Any, source: str, *, must_exist: bool) -> Path | None:
    if value is None:
        return None
    path = Path(value)
    if not path.is_absolute():
        path = Path(config.rootpath) / path
    if must_exist and path.is_dir():
        raise ConfigError(f"{source}={value!r}: {path} is a directory; give the report file in it")
    if must_exist and not path.is_file():
        raise ConfigError(f"{source}={value!r}: no such file ({path})")
    return path


def _output(config: pytest.Config, value: Any, source: str) -> Path | None:
    """An output file's path, checked before the tests run: a report that cannot be written at
    the end would otherwise cost the whole run's summary."""
    path = _path(config, value, source, must_exist=False)
    if path is None:
        return None
    from .output_path import output_problem

    problem = output_problem(path)
    if problem:
        raise ConfigError(f"{source}={str(value)[:200]!r}: {problem}; give a file path that can be written")
    return path


def _budget(raw: Any, source: str) -> float | None:
    if raw is None:
        return None
    try:
        budget = float(raw)
    except (TypeError, ValueError, OverflowError):
        budget = math.nan
    # float() accepts "nan", "inf" and "1e400" (inf): none of them is an amount.
    if not math.isfinite(budget) or not 0 <= budget <= MAX_BUDGET:
        raise ConfigError(
            f"{source}={str(raw)[:40]!r}: expected a USD amount >= 0 and at most {MAX_BUDGET:g}, "
            "e.g. 0.50"
        )
    return budget


def settings_from_config(config: pytest.Config) -> Settings:
    """Read and check every option; a bad value raises ``ConfigError`` naming it."""
    mode_cli = _mode(config.getoption("crewguard_record_mode"), "--crewguard-record-mode")
    ini_mode = config.getini("crewguard_record_mode") or "none"
    mode_ini = _mode(ini_mode, "ini crewguard_record_mode") or "none"
    cassette_dir, _ = _value(config, "cassette-dir")
    budget_raw, budget_source = _value(config, "max-cost")
    budget = _budget(budget_raw, budget_source)
    prices, prices_source = _value(config, "prices")
    report, report_source = _value(config, "report")
    html, html_source = _value(config, "html")
    baseline, baseline_source = _value(config, "baseline")
    compare_fail, _ = _value(config, "compare-fail")
    markdown, markdown_source = _value(config, "markdown")
    step_summary = not config.getoption("crewguard_no_step_summary") and _ini_bool(
        config, "crewguard_step_summary"
    )
    match_on_ini = config.getini("crewguard_match_on")
    gc_freeze = _ini_bool(config, "crewguard_gc_freeze")
    allow_raw, allow_source = _value(config, "allow-hosts")
    allow_hosts: tuple[str, ...] = ()
    if allow_raw is not None:
        from .network import parse_allowed

        allow_hosts = parse_allowed(str(allow_raw).split(","), f"{allow_source}={allow_raw!r}")
    return Settings(
        rootdir=Path(config.rootpath),
        record_mode_cli=mode_cli,
        record_mode_ini=mode_ini,
        cassette_dir=_path(config, cassette_dir or "cassettes", "cassette dir", must_exist=False)
        or Path(config.rootpath) / "cassettes",
        max_cost=budget,
        prices_file=_path(config, prices, prices_source, must_exist=True),
        report=_output(config, report, report_source),
        baseline=_path(config, baseline, baseline_source, must_exist=True),
        compare_fail=compare_fail,
        markdown=_output(config, markdown, markdown_source),
        step_summary=step_summary,
        match_on=_match_on(match_on_ini),
        allow_hosts=allow_hosts,
        html=_output(config, html, html_source),
        gc_freeze=gc_freeze,
    )


def _ini_bool(config: pytest.Config, key: str) -> bool:
    try:
        return bool(config.getini(key))
    except (ValueError, pytest.UsageError) as err:  # pytest's message names neither the key nor the fix
        raise ConfigError(f"ini {key}: {err}; expected true or false") from None


def _match_on(ini: Any) -> tuple[str, ...] | None:
    if not ini:
        return None
    from .match_config import parse_match_on  # only when set: a plain run does not load it

    return parse_match_on(ini, "ini crewguard_match_on")
