"""CrewAI's per-user key is made by the xdist controller, before workers race to make it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pytest_crewguard.crewai_key import ensure_crewai_key

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the key's Linux location")


def _key(home: Path) -> Path:
    return home / ".local" / "share" / "crewai" / "credentials" / "secret.key"


def test_the_key_is_made_once_and_then_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    ensure_crewai_key()
    made = _key(tmp_path).read_bytes()
    assert len(made) == 44  # a Fernet key, as CrewAI reads it
    ensure_crewai_key()
    assert _key(tmp_path).read_bytes() == made


def test_the_xdist_controller_makes_it_before_the_workers_start(pytester: pytest.Pytester) -> None:
    home = Path(os.environ["HOME"])  # pytester's own, empty, home
    assert not _key(home).exists()
    pytester.makepyfile("import sys\n\ndef test_plain():\n    assert 'crewai' not in sys.modules\n")
    result = pytester.runpytest_subprocess("-n", "1", "-p", "xdist", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert len(_key(home).read_bytes()) == 44
