"""pytest wiring: options, the marker, the ``crewguard`` fixture and the end-of-run report.

Everything here is cheap at load time: crewai, vcrpy and genai-prices are imported only
when a guarded test runs, so a pytest run without crew tests does not pay for them. This is
the one module that turns crewguard's verdicts into pytest outcomes.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import pytest

from .environment import restore_environment
from .errors import CrewguardError
from .options import MARKER_HELP, add_options, settings_from_config
from .run_state import RunState, junit_properties

if TYPE_CHECKING:
    from .guard import CrewGuard
    from .guard_session import GuardSession
    from .marker import GuardSpec

MARKER = "crewguard"
_OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)
_state_key = pytest.StashKey[RunState]()
_pytest_session_key = pytest.StashKey[pytest.Session]()
_spec_key: pytest.StashKey[GuardSpec] = pytest.StashKey()
_guard_key: pytest.StashKey[GuardSession] = pytest.StashKey()  # the running test's guard
_notes_key = pytest.StashKey[list[str]]()
_guarded_key = pytest.StashKey[bool]()  # marked, or asks for the crewguard fixture
_xdist_run_key = pytest.StashKey[str]()  # pytest-xdist's id of this run, on the controller
MARKER_FIXTURE = "_crewguard_marker"
VCR_NOTE = (
    "carry @pytest.mark.vcr too: crewguard's cassette answered their HTTP traffic, "
    "pytest-recording's cassette was not used"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    try:
        config.stash[_state_key] = RunState.load(settings_from_config(config))
    except CrewguardError as err:
        raise pytest.UsageError(f"crewguard: {err}") from None
    # A cleanup, not an unconfigure hook: it runs after every plugin's unconfigure.
    config.add_cleanup(lambda: _end_without_stuck_crews(config))


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_state_key, None)
    if state is not None:
        from .storage import remove_storage

        remove_storage(state.storage)
        restore_environment(state.saved_env)


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_pytest_session_key] = session


def _end_without_stuck_crews(config: pytest.Config) -> None:
    session = config.stash.get(_pytest_session_key, None)
    if session is not None and "pytest_crewguard.deadline" in sys.modules:
        from .stuck_exit import end_without_stuck_crews, end_worker

        if hasattr(config, "workeroutput"):  # its results are sent: the lines went with them
            end_worker(int(session.exitstatus))
            return
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        end_without_stuck_crews(reporter, int(session.exitstatus))


@pytest.hookimpl(wrapper=True)
def pytest_collection(session: pytest.Session) -> Generator[None, Any, Any]:
    state = session.config.stash[_state_key]
    if not state.settings.gc_freeze:
        return (yield)
    from .gc_freeze import AFTER_COLLECTION, freeze_heap, paused_while_collecting

    with paused_while_collecting():
        result = yield
    if session.config.pluginmanager.has_plugin(GuardedTestHooks.NAME):  # the session has crew tests
        freeze_heap(AFTER_COLLECTION)
    return result


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Bad marker arguments stop the run at collection, like an unknown option would.
    settings = config.stash[_state_key].settings
    defaults: list[tuple[str, Any]] = []  # guarded tests' default cassettes (nodeid, path)
    for item in items:
        marks = list(item.iter_markers(MARKER))
        try:
            specs = [_spec(m.args, dict(m.kwargs), item.nodeid, settings) for m in marks] if marks else []
        except CrewguardError as err:
            raise pytest.UsageError(f"crewguard: {err}") from None
        if specs:
            item.stash[_spec_key] = specs[0]  # the closest marker wins, as with get_closest_marker
            _attach_marker_fixture(item)
        if specs or "crewguard" in getattr(item, "fixturenames", ()):
            item.stash[_guarded_key] = True
            GuardedTestHooks.register(config)
            if not (specs and specs[0].cassette):
                defaults.append((item.nodeid, settings.cassette_dir))
    if defaults:
        from .cassette_location import cassette_path, shared_defaults

        shared = shared_defaults((nodeid, cassette_path(folder, nodeid)) for nodeid, folder in defaults)
        if shared:
            raise pytest.UsageError(f"crewguard: {shared}")


def _spec(args: tuple[Any, ...], kwargs: dict[str, Any], nodeid: str, settings: Any) -> GuardSpec:
    from .marker import spec_from_marker

    return spec_from_marker(
        args, kwargs, nodeid, cassette_dir=settings.cassette_dir, rootdir=settings.rootdir
    )


def _attach_marker_fixture(item: pytest.Item) -> None:
    """Give a marked test the fixture that starts its guard; unmarked tests never pay for it.

    It goes first among the function-scoped fixtures, where an autouse fixture of this plugin
    would be: a fixture of the test that kicks off a crew runs inside the cassette.
    """
    names: list[str] | None = getattr(item, "fixturenames", None)
    if names is None or MARKER_FIXTURE in names:
        return
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {})
    position = 0
    for index, name in enumerate(names):
        fixturedefs = defs.get(name)
        if fixturedefs and fixturedefs[-1].scope != "function":
            position = index + 1
    names.insert(position, MARKER_FIXTURE)


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

    state, spec = request.config.stash[_state_key], request.node.stash.get(_spec_key, None)
    try:
        guard = state.guard_session(request.node.nodeid, spec, crewguard_config)
    except CrewguardError as err:
        raise pytest.fail.Exception(f"crewguard: {err}", pytrace=False) from None
    try:
        guard.start()
    except CrewguardError as err:  # the message says it all: no second copy as its context
        raise pytest.fail.Exception(str(err), pytrace=False) from None
    request.node.stash[_guard_key] = guard
    request.node.stash[_guarded_key] = True  # also when asked for with getfixturevalue
    GuardedTestHooks.register(request.config)
    try:
        yield CrewGuard(guard)
    finally:
        problem = guard.close()  # its record is built from the final verdict, after teardown
    if problem:
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def _crewguard_marker(request: pytest.FixtureRequest) -> None:
    # The marker alone guards a test (added to marked tests at collection): kickoffs made by
    # the application's own code count too.
    if _spec_key not in request.node.stash:
        return
    if request.node.get_closest_marker("vcr") is not None and "vcr" in request.fixturenames:
        # pytest-recording's cassette is opened first, so crewguard's, opened after it, is the
        # one that answers: a test keeps @pytest.mark.vcr while it migrates, and still counts.
        request.getfixturevalue("vcr")
        request.node.stash[_notes_key] = [*request.node.stash.get(_notes_key, []), VCR_NOTE]
    request.getfixturevalue("crewguard")


@contextmanager
def _gates_fail_the_test() -> Iterator[None]:
    from .verdict import GateFailure

    try:
        yield
    except GateFailure as failure:  # the core's verdict, as pytest's outcome with the same text
        outcome = pytest.fail.Exception(str(failure), pytrace=False)
        outcome.crewguard_gate = True  # type: ignore[attr-defined]  # a verdict, not a test cut short
        raise outcome from None


def _body_watchdog(guard: Any) -> AbstractContextManager[None]:
    if guard is None or guard.spec.max_seconds is None:
        return nullcontext()
    from .body_watchdog import body_watchdog

    return body_watchdog(guard)


class GuardedTestHooks:
    """Hook wrappers for guarded tests, registered only once a session has one: a run of
    plain tests never goes through them. In a mixed run they hand plain tests straight on."""

    NAME = "crewguard-guarded-tests"

    @classmethod
    def register(cls, config: pytest.Config) -> None:
        if not config.pluginmanager.has_plugin(cls.NAME):
            config.pluginmanager.register(cls(), cls.NAME)
            # CrewAI 1.15 reads its own deprecated fields on every kickoff; those warnings are
            # not the user's to fix and would bury the report. -W or the user's own filters
            # still win. Added here, not at configure: pytest applies every filter to every
            # test, and a run without crew tests has no CrewAI warnings to hide.
            config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:crewai")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if _guarded_key not in item.stash:
            return (yield)
        with _gates_fail_the_test():  # a fixture may kick off a crew
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, Any, Any]:
        if _guarded_key not in item.stash:
            return (yield)
        try:
            with _gates_fail_the_test():
                return (yield)
        finally:
            if item.config.stash[_state_key].settings.gc_freeze:
                from .gc_freeze import AFTER_FIRST_TEST, freeze_heap

                freeze_heap(AFTER_FIRST_TEST)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        if _guarded_key not in item.stash:
            return (yield)
        guard = item.stash.get(_guard_key, None)
        if guard is not None:
            guard.begin_call()
        try:
            with _gates_fail_the_test(), _body_watchdog(guard):
                result = yield
        except BaseException as err:
            # A gate's verdict, a skip or an xfail stops the test where every run stops it; an
            # error or an interrupt may not recur: its partial recording must not replace a whole one.
            deliberate = isinstance(err, pytest.skip.Exception | pytest.xfail.Exception)
            if guard is not None and not deliberate and not getattr(err, "crewguard_gate", False):
                note = guard.cut_short(err)
                if note:
                    item.stash[_notes_key] = [*item.stash.get(_notes_key, []), note]
            if guard is not None and not isinstance(err, KeyboardInterrupt | SystemExit):
                guard.settle_kickoffs(fail=False)  # failed: nothing of its crews may outlive the cassette
            explained = guard.explain(err) if guard is not None and not isinstance(err, _OUTCOMES) else None
            if explained is None:
                raise
            raise pytest.fail.Exception(str(explained), pytrace=False) from None
        if guard is not None:
            with _gates_fail_the_test():
                guard.finish_call()
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        if _guarded_key not in item.stash:
            return (yield)
        report = yield
        guard = item.stash.get(_guard_key, None)
        if guard is not None:
            if report.skipped:
                guard.verdict.mark("skipped")
                guard.verdict.xfailed = guard.verdict.xfailed or hasattr(report, "wasxfail")
            elif report.failed:
                guard.verdict.mark("failed" if report.when == "call" else "error")
            if report.when == "teardown":
                # The verdict is final: the test's one record, then free its bodies and events.
                record = guard.result(item.stash.get(_notes_key, []))
                guard.results.add(record)
                del item.stash[_guard_key]
                # --junitxml reads the teardown report's properties: the numbers land on the testcase.
                properties = junit_properties(record)
                item.user_properties.extend(properties)
                report.user_properties = [*report.user_properties, *properties]
        return report


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: Any) -> None:
    # Every worker imports crewai at once; on a machine's first run CrewAI makes a key racily.
    from .crewai_key import ensure_crewai_key

    ensure_crewai_key()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any) -> None:
    # pytest-xdist controller: merge each worker's records, so the table and the session
    # budget cover the whole run rather than one worker's share.
    run = getattr(node, "workerinput", {}).get("testrunuid")
    if run:  # the workers' shared record of cassette writers is removed at the session's end
        node.config.stash[_xdist_run_key] = run
    output = getattr(node, "workeroutput", {})
    if output.get("crewguard_stuck"):  # shown now: the worker ends without waiting for them
        from .stuck_exit import show_worker_lines

        reporter = node.config.pluginmanager.get_plugin("terminalreporter")
        show_worker_lines(reporter, getattr(node.gateway, "id", "worker"), output["crewguard_stuck"])
    records = output.get("crewguard")
    if records:
        from .session import GuardedTest

        results = node.config.stash[_state_key].session()
        for data in records:
            results.add(GuardedTest.from_json(data))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(_xdist_run_key, None)
    if run is not None:
        from .cassette_writers import forget_run

        forget_run(run)
    state = session.config.stash[_state_key]
    if state.results is None:
        return
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports and enforces
        workeroutput["crewguard"] = [r.to_json(timeline=True) for r in state.results.records.values()]
        from .stuck_exit import stuck_lines

        workeroutput["crewguard_stuck"] = stuck_lines(int(session.exitstatus))
        return
    state.write_reports()
    if state.fails_run() and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[_state_key]
    if state.results is not None and not hasattr(config, "workeroutput"):
        from .terminal import write_summary

        write_summary(terminalreporter, state)
