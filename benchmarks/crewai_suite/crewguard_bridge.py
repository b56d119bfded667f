"""pytest plugin of the CrewAI suite benchmark: guard every ``@pytest.mark.vcr`` test with crewguard.

Loaded with ``-p crewguard_bridge`` (``benchmarks/crewai_suite`` on ``PYTHONPATH``). For each
collected test that carries pytest-recording's ``vcr`` marker it adds
``@pytest.mark.crewguard(cassette=<the cassette pytest-recording would load>, match_on=[...])``;
the ``vcr`` marker stays on, CrewAI's conftest is untouched.

``--suite-match-on`` picks the matchers: ``crewai`` (default) uses what pytest-recording would
use for that test (the ``vcr`` marker's ``match_on``, else CrewAI's ``vcr_config``:
method, scheme, host, port, path); ``strict`` passes none, so crewguard's default (body
included) applies. ``match_on`` is passed only when the installed crewguard accepts it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

# CrewAI's vcr_config (conftest.py at the root of the CrewAI repository).
CREWAI_MATCH_ON = ["method", "scheme", "host", "port", "path"]
_PACKAGE_DIRS = ("crewai", "crewai-tools", "crewai-files", "cli", "crewai-core")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("crewai-suite")
    group.addoption(
        "--suite-match-on",
        default="crewai",
        choices=("crewai", "strict"),
        help="crewai: pytest-recording's matchers per test; strict: crewguard's default matching",
    )
    group.addoption(
        "--suite-crewguard-config",
        action="store_true",
        help="give crewguard CrewAI's request normalisation (regional hosts) as a crewguard_config",
    )


class CrewAINormalisation:
    """What CrewAI's ``before_record_request`` does to both sides of a match under
    pytest-recording, said in crewguard's terms: Bedrock's regional hosts and Azure endpoints
    become one placeholder each (the suite's .env.test says us-east-1, cassettes were recorded
    in us-west-2)."""

    @pytest.fixture
    def crewguard_config(self) -> dict[str, Any]:
        return {
            "rewrite_hosts": {
                r"^bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com$": "bedrock-runtime.vcr.amazonaws.com",
                r"^.+\.openai\.azure\.com$": "fake-azure-endpoint.openai.azure.com",
            }
        }


def pytest_configure(config: pytest.Config) -> None:
    # Registered now, after crewguard's entry point, so this fixture overrides crewguard's default.
    if config.getoption("--suite-crewguard-config"):
        config.pluginmanager.register(CrewAINormalisation(), "crewai-suite-normalisation")


def crewguard_accepts(argument: str) -> bool:
    """Whether the installed crewguard marker knows ``argument`` (older ones reject it)."""
    try:
        from pytest_crewguard import marker
    except ImportError:
        return False
    known = getattr(marker, "ARGUMENTS", None) or getattr(marker, "KNOWN_ARGUMENTS", ())
    return argument in known


def cassette_dir(test_file: Path) -> Path:
    """CrewAI's ``vcr_cassette_dir`` fixture: tests/cassettes/<test dir relative to tests/>."""
    for parent in test_file.parents:
        if parent.name in _PACKAGE_DIRS and parent.parent.name == "lib":
            package_root = parent
            break
    else:
        package_root = test_file.parent
    tests_root = package_root / "tests"
    if test_file.parent == tests_root:
        return tests_root / "cassettes"
    return tests_root / "cassettes" / test_file.parent.relative_to(tests_root)


def cassette_name(item: pytest.Item) -> str:
    """pytest-recording's ``default_cassette_name`` fixture, for a collected item."""
    from pytest_recording.plugin import get_default_cassette_name

    marker = item.get_closest_marker("default_cassette")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return str(get_default_cassette_name(getattr(item, "cls", None), item.name))


def crewguard_cassette_dir(config: pytest.Config) -> Path:
    """crewguard's cassette dir (``--crewguard-cassette-dir``, ini, default ``cassettes``)."""
    value = None
    try:
        value = config.getoption("--crewguard-cassette-dir")
    except ValueError:
        pass
    if not value:
        try:
            value = config.getini("crewguard_cassette_dir")
        except ValueError:
            value = None
    path = Path(str(value or "cassettes"))
    return path if path.is_absolute() else config.rootpath / path


def guard_kwargs(item: pytest.Item, vcr: Any, mode: str, with_match_on: bool) -> dict[str, Any]:
    path = cassette_dir(Path(str(item.path))) / f"{cassette_name(item)}.yaml"
    # crewguard takes a marker's cassette relative to its cassette dir (the harness points that
    # at CrewAI's tests/cassettes); an absolute path is for cassettes outside it.
    base = crewguard_cassette_dir(item.config)
    kwargs: dict[str, Any] = {"cassette": str(path.relative_to(base) if path.is_relative_to(base) else path)}
    if mode == "crewai" and with_match_on:
        kwargs["match_on"] = list(vcr.kwargs.get("match_on") or CREWAI_MATCH_ON)
    return kwargs


@pytest.hookimpl(tryfirst=True)  # before crewguard reads its marker at collection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mode = config.getoption("--suite-match-on")
    with_match_on = crewguard_accepts("match_on") and not os.environ.get("SUITE_NO_MATCH_ON")
    for item in items:
        vcr = item.get_closest_marker("vcr")
        if vcr is None or item.get_closest_marker("crewguard") is not None:
            continue
        item.add_marker(pytest.mark.crewguard(**guard_kwargs(item, vcr, mode, with_match_on)))
