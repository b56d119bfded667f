"""Tests crewguard does not guard pay nothing for it: no fixture, no hook work."""

from __future__ import annotations

import pytest

# A guard imports crewai; the outer session must have it first (see conftest.crewai_loaded).
pytestmark = pytest.mark.usefixtures("crewai_loaded")


def test_only_guarded_tests_get_the_guard_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(scope="session")
        def database():
            return "db"

        def test_plain(request):
            assert "_crewguard_marker" not in request.fixturenames

        @pytest.mark.crewguard(cassette="none.yaml")
        def test_marked(request, database):
            names = request.fixturenames
            # first among the function-scoped fixtures, after the session-scoped ones
            assert names.index("database") < names.index("_crewguard_marker") < names.index("request")
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_hook_wrappers_are_registered_only_when_a_test_is_guarded(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            registered = session.config.pluginmanager.has_plugin("crewguard-guarded-tests")
            print(f"guarded-test hooks registered: {registered}")
        """
    )
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    pytester.makepyfile(
        test_late="""
        def test_asks_for_the_guard_late(request):
            guard = request.getfixturevalue("crewguard")
            assert guard.runs == []
        """
    )
    plain = pytester.runpytest("-p", "no:cacheprovider", "-s", "test_plain.py")
    plain.assert_outcomes(passed=1)
    plain.stdout.fnmatch_lines(["*guarded-test hooks registered: False*"])
    # Asked for with getfixturevalue, the guard registers them itself.
    late = pytester.runpytest("-p", "no:cacheprovider", "-s", "test_late.py")
    late.assert_outcomes(passed=1)
    late.stdout.fnmatch_lines(["*guarded-test hooks registered: True*"])


CREWAI_DEPRECATION = """
import warnings

def crewai_warns():
    warnings.warn_explicit("old field", DeprecationWarning, "crewai/agent.py", 1, module="crewai.agent")
"""


def test_crewai_deprecations_are_hidden_once_a_test_is_guarded(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        helpers=CREWAI_DEPRECATION,
        test_plain="from helpers import crewai_warns\n\ndef test_plain():\n    crewai_warns()\n",
        test_guarded="""
        import pytest
        from helpers import crewai_warns

        @pytest.mark.crewguard(cassette="none.yaml")
        def test_guarded():
            crewai_warns()
        """,
    )
    plain = pytester.runpytest("-p", "no:cacheprovider", "test_plain.py")
    plain.assert_outcomes(passed=1)
    assert "DeprecationWarning: old field" in plain.stdout.str()  # no crew test: pytest's filters alone
    both = pytester.runpytest("-p", "no:cacheprovider")
    both.assert_outcomes(passed=2)
    assert "old field" not in both.stdout.str()  # CrewAI's own deprecations are not the user's to fix
