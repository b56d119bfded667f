"""The process environment CrewAI needs before it is imported, and per-test storage.

CrewAI reads several switches once, at import time: telemetry, tracing, the version check and
the first-run prompt (which can block for 20 s on a terminal). Storage is located through
``CREWAI_STORAGE_DIR``, which must be absolute: a relative one splits storage between folders.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from .cassette_location import file_safe

# setdefault semantics: a user who set one of these deliberately keeps their value.
CREWAI_SWITCHES: dict[str, str] = {
    "CREWAI_TESTING": "true",
    "CREWAI_DISABLE_TELEMETRY": "true",
    "OTEL_SDK_DISABLED": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    # litellm (CrewAI's fallback for other providers) downloads its price map at import; in
    # replay that request would be a miss, and litellm's failure then sticks for the process.
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
}

STORAGE_VARIABLE = "CREWAI_STORAGE_DIR"


def prepare_crewai_environment(session_storage: Path) -> dict[str, str | None]:
    """Set CrewAI's switches and an absolute session storage directory (before any import).

    Returns the previous values, for :func:`restore_environment`.
    """
    saved = {name: os.environ.get(name) for name in (*CREWAI_SWITCHES, STORAGE_VARIABLE)}
    for name, value in CREWAI_SWITCHES.items():
        os.environ.setdefault(name, value)
    session_storage.mkdir(parents=True, exist_ok=True)
    os.environ[STORAGE_VARIABLE] = str(session_storage.resolve())
    return saved


def restore_environment(saved: dict[str, str | None]) -> None:
    """Put back what :func:`prepare_crewai_environment` changed."""
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# CrewAI commits its task outputs to SQLite at every kickoff, and every commit is synced to
# disk: in a test's throwaway directory that durability buys nothing, and on disk the syncs
# were a tenth of a replayed crew test. Memory-backed storage is used when it has room to spare.
MEMORY_DIR = "/dev/shm"
MEMORY_MIN_FREE = 1 << 30


def session_storage_parent() -> str | None:
    """Where a run's CrewAI storage goes: ``$TMPDIR`` when it is set, else ``/dev/shm`` when it
    is a writable memory file system with 1 GiB free, else ``None`` (the system's temp dir)."""
    if os.environ.get("TMPDIR"):
        return None
    try:
        free = os.statvfs(MEMORY_DIR)
    except (OSError, AttributeError):  # no /dev/shm, or no statvfs (Windows)
        return None
    if free.f_bavail * free.f_frsize < MEMORY_MIN_FREE or not os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return None
    return MEMORY_DIR


def new_storage_root(prefix: str = "crewguard-storage-", *, sweep: bool = True) -> Path:
    """A new directory for a run's CrewAI storage, under :func:`session_storage_parent`.

    It holds the pid of the process that made it; with ``sweep``, roots of processes that have
    ended without removing theirs are removed first (see :func:`remove_orphan_roots`).
    """
    root = Path(tempfile.mkdtemp(prefix=prefix, dir=session_storage_parent()))
    if sweep:
        remove_orphan_roots(root, prefix)
    (root / OWNER_FILE).write_text(f"{os.getpid()}\n{_pid_namespace()}")
    return root


OWNER_FILE = ".crewguard-pid"
_ORPHAN_AGE_S = 60.0  # a root younger than this may belong to a process still starting


def remove_orphan_roots(root: Path, prefix: str = "crewguard-storage-") -> None:
    """Remove the storage roots beside ``root`` whose processes ended without removing them
    (killed by CI's cancel, SIGTERM, SIGKILL): in /dev/shm they would hold memory until the
    machine restarts."""
    import shutil
    import time

    if not hasattr(os, "getuid"):  # Windows: no owner to tell ours from another user's
        return
    try:
        candidates = [p for p in root.parent.iterdir() if p.name.startswith(prefix) and p != root]
    except OSError:
        return
    namespace = _pid_namespace()
    for candidate in candidates:
        try:
            pid, _, owner_namespace = (candidate / OWNER_FILE).read_text().partition("\n")
            owner = int(pid)
            info = candidate.stat()
        except (OSError, ValueError):  # not ours, or no owner file
            continue
        if owner_namespace.strip() not in ("", namespace):  # "": written before it was kept
            continue  # a container's run sharing this /dev/shm: its pids are not ours to check
        stale = time.time() - info.st_mtime > _ORPHAN_AGE_S
        if info.st_uid == os.getuid() and stale and not _alive(owner):
            shutil.rmtree(candidate, ignore_errors=True)


def _pid_namespace() -> str:
    """The process's PID namespace (``pid:[4026531836]``; empty where there is none to read)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def storage_dir_for(session_storage: Path, nodeid: str) -> Path:
    """The storage directory of one test: a sub-directory of the session's, named for it
    (absolute, symbolic links resolved; created by :func:`~pytest_crewguard.storage.storage_at`)."""
    safe = file_safe(nodeid)[:100]
    # Distinct node ids can sanitise to one name (`t[a/b]`, `t[a b]`): the hash keeps them apart.
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return _resolved(session_storage) / f"{safe}-{digest}"


@lru_cache(maxsize=64)
def _resolved(path: Path) -> Path:
    # The session's directory is resolved once, not again for each test's (one lstat per
    # component of the path): the name under it is a plain directory of crewguard's own.
    return path.resolve()


# Provider SDKs refuse to build a client without a key, even when every request will be
# answered from a cassette. In replay nothing leaves the machine, so a placeholder is safe.
# The scrubber also reads this list: these values never reach a cassette.
REPLAY_KEY_VARIABLES: tuple[str, ...] = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AZURE_API_KEY",
    "OPENROUTER_API_KEY",
)
REPLAY_PLACEHOLDER_KEY = "crewguard-replay-placeholder"


@contextmanager
def placeholder_keys() -> Iterator[None]:
    """Set a placeholder for each unset provider key variable, for the duration of a replay."""
    missing = [name for name in REPLAY_KEY_VARIABLES if not os.environ.get(name)]
    for name in missing:
        os.environ[name] = REPLAY_PLACEHOLDER_KEY
    try:
        yield
    finally:
        for name in missing:
            if os.environ.get(name) == REPLAY_PLACEHOLDER_KEY:
                del os.environ[name]
