"""Several tests writing one cassette: a lock, and a merge instead of a lost recording.

Tests may share a cassette (``cassette="shared.yaml"``), in one process or in several
pytest-xdist workers. Each test loads the cassette when it starts and writes it when it ends, so
without care the last writer's file wins and the others' interactions are lost. Here a write

- holds an exclusive lock on the cassette's directory (``flock``: across processes; the
  directory itself is locked, so no lock file is left beside the cassettes), and
- merges: whatever another writer added to the file since this test loaded it is kept,
  identical interactions once, and what it replaced stays replaced.

``rewrite`` means "only this run's interactions", which cannot be merged with another test's
recording made in the same session: the later writer fails, naming the other test.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CassetteError

try:
    import fcntl
except ImportError:  # Windows: no flock; writes stay atomic but are not serialised
    fcntl = None  # type: ignore[assignment]


@dataclass
class _Writer:
    nodeid: str
    record_mode: str
    loaded_text: str | None = None  # the file as this test loaded it (recording modes only)


_writers: dict[str, _Writer] = {}
# Tests of this session that wrote a cassette, with their record mode; under xdist the other
# workers' writes are in a small file per cassette in the temporary directory of the test run.
_written: dict[str, list[tuple[str, str]]] = {}
_session: list[int] = [0]


def _key(path: Path) -> str:
    return str(Path(os.path.abspath(path)))


def writing_as(path: Path, nodeid: str, record_mode: str, session: object) -> None:
    """Say which test of which session is about to open (and maybe write) a cassette."""
    if id(session) != _session[0]:  # a new session: earlier sessions' writes do not conflict
        _session[0] = id(session)
        _written.clear()
        _writers.clear()
    _writers[_key(path)] = _Writer(nodeid, record_mode)


def loaded(path: Path, text: str | None) -> None:
    """Remember the cassette's text as loaded, when the test may write it."""
    writer = _writers.get(_key(path))
    if writer is not None and writer.record_mode not in ("none", "once"):
        writer.loaded_text = text


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the directory of ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: the write stays atomic, just unserialised
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


def remove_leftovers(path: Path) -> None:
    """Delete temporary files a crashed write of this cassette left behind (lock held)."""
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        leftover.unlink(missing_ok=True)


def fingerprint(interaction: Any) -> str:
    """Identity of an interaction, the same whether it came from the file or from vcrpy."""
    return json.dumps(
        interaction, sort_keys=True, default=lambda v: v.hex() if isinstance(v, bytes) else repr(v)
    )


def _run_dir(run: str) -> Path:
    return Path(tempfile.gettempdir()) / f"crewguard-run-{run[:32]}"


def _run_log(path: Path) -> Path | None:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return None
    digest = hashlib.sha256(_key(path).encode()).hexdigest()[:24]
    return _run_dir(run) / f"{digest}.writers"


def forget_run(run: str) -> None:
    """The xdist run ``run`` is over: its workers' record of who wrote which cassette goes."""
    shutil.rmtree(_run_dir(run), ignore_errors=True)


def _earlier_writers(path: Path) -> list[tuple[str, str]]:
    writers = list(_written.get(_key(path), []))
    log = _run_log(path)
    if log is not None and log.is_file():
        for line in log.read_text(encoding="utf-8").splitlines():
            mode, _, nodeid = line.partition("\t")
            writers.append((nodeid, mode))
    return writers


def check_no_conflict(path: Path, shown: str) -> None:
    """Refuse a write that would drop another test's recording of this session (lock held)."""
    me = _writers.get(_key(path))
    if me is None:
        return
    for nodeid, mode in _earlier_writers(path):
        if nodeid != me.nodeid and "rewrite" in (mode, me.record_mode):
            raise CassetteError(
                f"crewguard refused to write cassette {shown}: test {nodeid} recorded it in this "
                f"session (record mode {mode}), and {me.nodeid} (record mode {me.record_mode}) "
                "would replace its interactions: rewrite keeps only one test's. Give each test "
                "its own cassette (drop the shared cassette= argument), or record the tests that "
                f"share it with --crewguard-record-mode=all. {me.nodeid}'s recording was not written: "
                f"the file holds what {nodeid} wrote, and any other test's interactions it held before "
                "are gone from it (restore it from version control, or record the tests again)."
            )


def merge(mine: list[Any], on_disk: list[Any] | None, loaded_data: list[Any] | None) -> list[Any]:
    """A three-way merge of this write with the file as it is now and as this test loaded it.

    What another writer added since is kept (identical interactions once); what it removed
    since (``all`` mode replaces a re-recorded interaction) stays removed here too, so a stale
    recording does not come back.
    """
    if not on_disk:
        return mine
    before = {fingerprint(i) for i in loaded_data or []}
    now = {fingerprint(i) for i in on_disk}
    removed = before - now
    merged = [i for i in mine if fingerprint(i) not in removed]
    seen = {fingerprint(i) for i in merged}
    for interaction in on_disk:
        key = fingerprint(interaction)
        if key not in before and key not in seen:
            merged.append(interaction)
            seen.add(key)
    return merged


def loaded_text(path: Path) -> str | None:
    writer = _writers.get(_key(path))
    return writer.loaded_text if writer is not None else None


def wrote(path: Path, text: str) -> None:
    """Record that the current test wrote the cassette (lock held)."""
    me = _writers.get(_key(path))
    if me is None:
        return
    me.loaded_text = text  # a second write by the same test merges against this one
    _written.setdefault(_key(path), []).append((me.nodeid, me.record_mode))
    log = _run_log(path)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"{me.record_mode}\t{me.nodeid}\n")


def check_writable(path: Path) -> None:
    """Raise :class:`CassetteError` now if the cassette at ``path`` could not be written at the
    end of the test (a read-only or full file system, a JSON cassette): recording would pay the
    provider first."""
    if path.suffix.lower() == ".json":
        raise CassetteError(json_cassette_message(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.parent / f".{path.name}.crewguard-write-check"
        with open(probe, "wb") as handle:
            handle.write(b"x")
        probe.unlink()
    except OSError as err:
        raise CassetteError(
            f"crewguard cannot record cassette {path}: its directory cannot be written "
            f"({err.strerror or err}). Nothing was sent to the provider. Make the directory "
            "writable or free space, or record into another one with --crewguard-cassette-dir."
        ) from None


def json_cassette_message(path: Path) -> str:
    """Why crewguard does not record into ``path``, a cassette of vcrpy's JSON serializer."""
    return (
        f"crewguard will not record into cassette {path}: it is a JSON cassette (vcrpy's json "
        "serializer, pytest-recording's serializer='json') and crewguard writes YAML, which the "
        "tool that owns this file could no longer read. Nothing was sent to the provider. Replay "
        "reads it as it is; to record with crewguard, give the test a cassette of its own "
        "(@pytest.mark.crewguard(cassette=\"....yaml\")), or record this one with the tool that wrote it."
    )
