"""What the plugin changes in the process environment, and that a run puts it all back."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.environment import CREWAI_SWITCHES, REPLAY_KEY_VARIABLES, STORAGE_VARIABLE

CHANGED = (*CREWAI_SWITCHES, STORAGE_VARIABLE, *REPLAY_KEY_VARIABLES)


def test_a_run_leaves_the_environment_as_it_found_it(pytester: pytest.Pytester, monkeypatch) -> None:
    # The outer session set the switches already: clear them so the inner run has to set them.
    for name in CHANGED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CREWAI_TRACING_ENABLED", "true")  # a user's own choice is kept
    before = {name: os.environ.get(name) for name in CHANGED}
    pytester.makepyfile(
        test_env="""
        import os

        def test_switches_are_set_during_the_run():
            assert os.environ["CREWAI_TESTING"] == "true"
            assert os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
            assert os.environ["CREWAI_TRACING_ENABLED"] == "true"
            assert os.path.isabs(os.environ["CREWAI_STORAGE_DIR"])
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)
    assert {name: os.environ.get(name) for name in CHANGED} == before


def test_storage_goes_to_memory_only_when_it_has_room_and_tmpdir_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_crewguard import environment

    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(environment, "MEMORY_DIR", str(tmp_path))
    monkeypatch.setattr(environment, "MEMORY_MIN_FREE", 1)
    assert environment.session_storage_parent() == str(tmp_path)
    monkeypatch.setattr(environment, "MEMORY_MIN_FREE", 1 << 62)  # not that much free
    assert environment.session_storage_parent() is None
    monkeypatch.setattr(environment, "MEMORY_MIN_FREE", 1)
    monkeypatch.setattr(environment, "MEMORY_DIR", str(tmp_path / "absent"))
    assert environment.session_storage_parent() is None
    monkeypatch.setattr(environment, "MEMORY_DIR", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "mine"))  # the user's choice wins
    assert environment.session_storage_parent() is None


def test_a_storage_root_left_by_a_process_that_ended_is_removed_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run killed by CI's cancel left its root in /dev/shm, holding memory until a reboot.
    import subprocess
    import tempfile

    from pytest_crewguard.environment import OWNER_FILE, new_storage_root
    from pytest_crewguard.storage import remove_if_empty

    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    old = os.stat(tmp_path).st_mtime - 3600
    roots = {}
    here = os.readlink("/proc/self/ns/pid")
    dead = ended.stdout.strip()
    owners = (("dead", f"{dead}\n{here}"), ("alive", f"{os.getppid()}\n{here}"), ("foreign", None),
              # a dead pid here may be a live run's in another PID namespace (a container
              # sharing /dev/shm): its storage was removed under it
              ("elsewhere", f"{dead}\npid:[1]"))
    for name, owner in owners:
        root = tmp_path / f"crewguard-storage-{name}"
        (root / "test-dir").mkdir(parents=True)
        if owner is not None:
            (root / OWNER_FILE).write_text(owner)
        os.utime(root, (old, old))
        roots[name] = root
    fresh = new_storage_root()
    assert not roots["dead"].exists()
    assert roots["alive"].exists() and roots["foreign"].exists()  # a live owner, or none known
    assert roots["elsewhere"].exists()
    assert (fresh / OWNER_FILE).read_text() == f"{os.getpid()}\n{here}"
    remove_if_empty(fresh)  # its owner file alone does not keep it
    assert not fresh.exists()


def test_an_xdist_session_leaves_nothing_in_its_temp_dir(
    pytester: pytest.Pytester, provider: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The workers' shared record of who wrote which cassette (crewguard-run-<run id>) stayed
    # after every recording session under pytest-xdist.
    from pytest_crewguard.testing.scripted_provider import Reply

    from .conftest import crew_test_file

    server = provider(lambda request: Reply(text="A short summary."))
    body = """
@pytest.mark.crewguard
@pytest.mark.parametrize("n", range(2))
def test_plain(crewguard, n):
    crewguard.kickoff(make_crew, inputs={"topic": "AI"})
"""
    pytester.makepyfile(test_crew=crew_test_file(server.openai_base_url, body))
    private = tmp_path / "private-tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    result = pytester.runpytest_subprocess("--crewguard-record-mode=once", "-p", "no:randomly", "-n", "2",
                                           timeout=120)
    result.assert_outcomes(passed=2)
    assert sorted(p.name for p in private.iterdir() if not p.name.startswith("crewai:")) == []
