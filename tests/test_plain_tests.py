"""Tests crewguard does not guard pay nothing for it: no fixture, no hook work."""

from __future__ import annotations

import pytest


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
