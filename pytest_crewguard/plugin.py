"""pytest wiring: options, the marker, the ``crewguard`` fixture and the end-of-run report.

Everything here is cheap at load time: crewai, vcrpy and genai-prices are imported only
when a guarded test runs, so a pytest run without crew tests does not pay for them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .environment import prepare_crewai_environment, restore_environment
from .errors import ConfigError, CrewguardError
from .isolation import UsedObjects
from .marker import GuardSpec, spec_from_marker
from .options import Settings, add_options, settings_from_config
from .pricing import PriceTable

if TYPE_CHECKING:
    from .baseline import Threshold
    from .guard import CrewGuard
    from .session import CrewguardSession

MARKER = "crewguard"
_settings_key = pytest.StashKey[Settings]()
_session_key = pytest.StashKey["CrewguardSession"]()
_storage_key = pytest.StashKey[Path]()
_guard_key = pytest.StashKey["CrewGuard"]()
_saved_env_key = pytest.StashKey[dict[str, str | None]]()
_prices_key = pytest.StashKey[PriceTable]()
_used_key = pytest.StashKey[UsedObjects]()
_spec_key = pytest.StashKey[GuardSpec]()
_baseline_key = pytest.StashKey[tuple[dict[str, Any] | None, list["Threshold"]]]()
_notes_key = pytest.StashKey[list[str]]()
_pytest_session_key = pytest.StashKey[pytest.Session]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "crewguard(cassette=None, max_cost=None, max_tokens=None, max_llm_calls=None, "
        "max_iterations=None, allow_max_iter=False, max_seconds=None, output=None, repeat=1, "
        "record_mode=None, max_memory_growth=None, allow_hosts=()): replay the test's crews "
        "from a cassette and fail it when a limit is crossed",
    )
    # CrewAI 1.15 reads its own deprecated fields on every kickoff; those warnings are not the
    # user's to fix and would bury the report. -W or the user's own filters still win.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:crewai")
    try:
        settings = settings_from_config(config)
    except CrewguardError as err:
        raise pytest.UsageError(f"crewguard: {err}") from None
    config.stash[_settings_key] = settings
    _load_prices(config)
    _load_baseline(config, settings)
    storage = Path(tempfile.mkdtemp(prefix="crewguard-storage-"))
    config.stash[_storage_key] = storage
    config.stash[_saved_env_key] = prepare_crewai_environment(storage)
    # A cleanup, not an unconfigure hook: it runs after every plugin's unconfigure.
    config.add_cleanup(lambda: _end_without_stuck_crews(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    storage = config.stash.get(_storage_key, None)
    if storage is not None:
        shutil.rmtree(storage, ignore_errors=True)
    restore_environment(config.stash.get(_saved_env_key, {}))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_pytest_session_key] = session


def _pytest_is_the_program() -> bool:
    """True when this session is pytest run as the program (``pytest``, ``python -m pytest``).

    Not for ``pytest.main()`` called by another program (an IDE runner, a notebook) nor for a
    session run inside another one (pytester's in-process runs): their process goes on.
    """
    try:
        import _pytest.config
        from _pytest.main import wrap_session

        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        names = ("console_main", "_console_main")  # what pytest's console script calls
        entries = [f for f in (getattr(_pytest.config, n, None) for n in names) if f is not None]
        is_pytest = (spec is not None and spec.name == "pytest.__main__") or any(
            getattr(main, n, None) in entries for n in names
        )
        frame = sys._getframe()
        sessions = 0
        while frame is not None:
            sessions += frame.f_code is wrap_session.__code__
            frame = frame.f_back  # type: ignore[assignment]
        return is_pytest and sessions == 1
    except Exception:  # pytest's internals moved: do not end a process we cannot be sure of
        return False


def _end_without_stuck_crews(config: pytest.Config) -> None:
    """End the process now if threads of crews that ran past max_seconds would keep it alive.

    Python cannot stop a thread blocked in C code (a tool waiting on a lock for good), and the
    interpreter joins CrewAI's worker threads at exit: it would wait after the summary, for
    ever. Like pytest-timeout's thread method: flush, then ``os._exit`` with the session's
    status, once every report is written.
    """
    deadline = sys.modules.get("pytest_crewguard.deadline")
    session = config.stash.get(_pytest_session_key, None)
    if deadline is None or session is None:  # no crew ran under a deadline
        return
    left = deadline.left_behind(grace=1.0)
    if not left:
        return
    program = _pytest_is_the_program()
    status = int(session.exitstatus)
    lines = deadline.left_behind_lines(left, status if program else None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(lines[0], red=True)
        for line in lines[1:]:
            reporter.write_line(line)
        reporter.flush()
    else:
        sys.stderr.write("\n".join(lines) + "\n")
    if program:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _load_prices(config: pytest.Config) -> None:
    # A bad price file is a usage error before any test runs; the file is small and parsed
    # without importing genai-prices, whose data loads only when a cost is computed.
    settings = config.stash[_settings_key]
    try:
        config.stash[_prices_key] = (
            PriceTable.from_file(settings.prices_file) if settings.prices_file else PriceTable()
        )
    except CrewguardError as err:
        raise pytest.UsageError(f"crewguard: {err}") from None


def _load_baseline(config: pytest.Config, settings: Settings) -> None:
    from .baseline import load_baseline, parse_compare_fail

    try:
        if settings.compare_fail and settings.baseline is None:
            raise ConfigError(
                "--crewguard-compare-fail needs --crewguard-baseline=PATH, an earlier "
                "report written with --crewguard-report=PATH"
            )
        thresholds = parse_compare_fail(settings.compare_fail) if settings.compare_fail else []
        baseline = load_baseline(settings.baseline) if settings.baseline else None
    except CrewguardError as err:
        raise pytest.UsageError(f"crewguard: {err}") from None
    config.stash[_baseline_key] = (baseline, thresholds)


def _regressions(config: pytest.Config) -> list[str]:
    from .baseline import regressions
    from .report import report_data

    baseline, thresholds = config.stash.get(_baseline_key, (None, []))
    if baseline is None or not thresholds or _session_key not in config.stash:
        return []
    return regressions(baseline, report_data(config.stash[_session_key]), thresholds)


def _session(config: pytest.Config) -> CrewguardSession:
    """The session's results, created at the first guarded test (so plain runs show no table)."""
    if _session_key not in config.stash:
        from .session import CrewguardSession

        config.stash[_session_key] = CrewguardSession(
            prices=config.stash[_prices_key], budget=config.stash[_settings_key].max_cost
        )
    return config.stash[_session_key]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Bad marker arguments stop the run at collection, like an unknown option would.
    settings = config.stash[_settings_key]
    for item in items:
        specs = []
        for marker in item.iter_markers(MARKER):
            try:
                specs.append(
                    spec_from_marker(
                        marker.args, dict(marker.kwargs), item.nodeid,
                        cassette_dir=settings.cassette_dir, rootdir=settings.rootdir,
                    )
                )
            except CrewguardError as err:
                raise pytest.UsageError(f"crewguard: {err}") from None
        if specs:
            item.stash[_spec_key] = specs[0]  # the closest marker wins, as with get_closest_marker


@pytest.fixture
def crewguard_config() -> dict[str, Any]:
    """How requests match recorded ones; override it in a conftest, like pytest-recording's
    ``vcr_config``. Keys: ``match_on``, ``ignore_query_params``, ``ignore_body_fields``,
    ``rewrite_hosts`` (``{host_regex: replacement}``) and ``matchers`` (``{name: function}``)."""
    return {}


@pytest.fixture
def crewguard(request: pytest.FixtureRequest, crewguard_config: Any) -> Iterator[CrewGuard]:
    """Kick off crews inside the test's cassette and under its ``crewguard`` marker limits."""
    from .guard import CrewGuard
    from .match_config import config_from_fixture

    config = request.config
    spec = request.node.stash.get(_spec_key, None) or GuardSpec()
    settings = config.stash[_settings_key]
    try:
        match_config = config_from_fixture(crewguard_config, spec.match_on or settings.match_on)
    except CrewguardError as err:
        pytest.fail(f"crewguard: {err}", pytrace=False)
    if _used_key not in config.stash:
        config.stash[_used_key] = UsedObjects()
    guard = CrewGuard(
        spec=spec,
        nodeid=request.node.nodeid,
        settings=settings,
        session=_session(config),
        used=config.stash[_used_key],
        storage_root=config.stash[_storage_key],
        match_config=match_config,
    )
    try:
        guard.start()
    except CrewguardError as err:
        pytest.fail(str(err), pytrace=False)
    request.node.stash[_guard_key] = guard
    try:
        yield guard
    finally:
        try:
            record = guard.result()
            record.notes = [*request.node.stash.get(_notes_key, []), *guard.notes()]
            _session(config).add(record)
        finally:
            problem = guard.close()
        if problem:
            pytest.fail(problem, pytrace=False)


@pytest.fixture(autouse=True)
def _crewguard_marker(request: pytest.FixtureRequest) -> None:
    # The marker alone guards a test: kickoffs made by the application's own code count too.
    if _spec_key not in request.node.stash:
        return
    if request.node.get_closest_marker("vcr") is not None and "vcr" in request.fixturenames:
        # pytest-recording's cassette is opened first, so crewguard's, opened after it, is the
        # one that answers: a test keeps @pytest.mark.vcr while it migrates, and still counts.
        request.getfixturevalue("vcr")
        request.node.stash[_notes_key] = [*request.node.stash.get(_notes_key, []), VCR_NOTE]
    request.getfixturevalue("crewguard")


VCR_NOTE = (
    "carry @pytest.mark.vcr too: crewguard's cassette answered their HTTP traffic, "
    "pytest-recording's cassette was not used"
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    try:
        result = yield
    except BaseException as err:
        guard = item.stash.get(_guard_key, None)
        if guard is None or isinstance(err, (pytest.fail.Exception, pytest.skip.Exception)):
            raise
        # The application may have caught the stand-in error of a miss and failed later, in
        # its own way: the cause, crewguard's message, goes first, not hundreds of lines of
        # the application's traceback.
        found = [f for f in guard.blind_spots() if f[0] not in guard.failed_gates]
        if not found:
            raise
        guard.failed_gates.extend(gate for gate, _ in found)
        then = f"{type(err).__name__}: {err}".strip().splitlines()[0][:300]
        raise pytest.fail.Exception(
            f"{found[0][1]}\n  (the test then failed with {then})", pytrace=False
        ) from None
    guard = item.stash.get(_guard_key, None)
    if guard is not None:
        guard.finish_call()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and _guard_key in item.stash:
        item.stash[_guard_key].outcome = "skipped"
    if report.failed and _session_key in item.config.stash and _guard_key in item.stash:
        guard = item.stash[_guard_key]
        outcome = "failed" if report.when == "call" else "error"
        guard.outcome = outcome
        item.config.stash[_session_key].fail(item.nodeid, outcome)
    if report.when == "teardown" and _guard_key in item.stash:
        del item.stash[_guard_key]  # its record is in the session; free the bodies and events
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    # pytest-xdist controller: merge each worker's records, so the table and the session
    # budget cover the whole run rather than one worker's share.
    records = getattr(node, "workeroutput", {}).get("crewguard")
    if records:
        from .session import GuardedTest

        results = _session(node.config)
        for data in records:
            results.add(GuardedTest.from_json(data))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if _session_key not in config.stash:
        return
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and enforces
        workeroutput["crewguard"] = [r.to_json() for r in config.stash[_session_key].records.values()]
        return
    results = config.stash[_session_key]
    settings = config.stash[_settings_key]
    if settings.report is not None:
        from .report import write_report

        write_report(results, settings.report)
    budget_broken = results.over_budget is not None or results.budget_unknown() is not None
    if (budget_broken or _regressions(config)) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _session_key not in config.stash or hasattr(config, "workeroutput"):
        return
    from .limits import usd
    from .report import table

    results = config.stash[_session_key]
    terminalreporter.write_sep("=", "crewguard")
    terminalreporter.write_line(table(results))
    over = results.over_budget
    if (unknown := results.budget_unknown()) is not None:  # unpriced models, calls without usage
        terminalreporter.write_line("crewguard: " + unknown, red=True, bold=True)
    baseline, _ = config.stash.get(_baseline_key, (None, []))
    if baseline is not None:
        from .baseline import comparison_lines
        from .report import report_data

        changes = comparison_lines(baseline, report_data(results))
        terminalreporter.write_line(
            "changes since the baseline:" if changes else "no changes since the baseline"
        )
        for line in changes:
            terminalreporter.write_line(f"  {line}")
    for line in _regressions(config):
        terminalreporter.write_line(f"crewguard: regression: {line}", red=True, bold=True)
    for note, count in _notes(results.records.values()):
        terminalreporter.write_line(f"crewguard: {count} {'test' if count == 1 else 'tests'} {note}")
    if over is not None:
        passed = not terminalreporter.stats.get("failed") and not terminalreporter.stats.get("error")
        terminalreporter.write_line(
            f"crewguard: session cost {usd(results.total_cost)} is over --crewguard-max-cost="
            f"{usd(results.budget or 0.0)} by {usd(over)}; failing the run"
            + (" even though the tests passed." if passed else "."),
            red=True,
            bold=True,
        )


def _notes(records: Any) -> list[tuple[str, int]]:
    """Each distinct note of the session's tests, with how many tests it concerns, once."""
    counts: dict[str, int] = {}
    for record in records:
        for note in dict.fromkeys(record.notes):
            counts[note] = counts.get(note, 0) + 1
    return list(counts.items())
