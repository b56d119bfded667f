"""CrewAI storage in a directory of one test (or of one run of a repeated test).

CrewAI locates storage through ``CREWAI_STORAGE_DIR`` (``crewai_core.paths.db_storage_path``),
read again on every call by memory (LanceDB, Qdrant Edge), the task output database and flow
state. Knowledge is the exception: ``crewai.rag.chromadb.constants`` and
``crewai.rag.qdrant.constants`` compute ``DEFAULT_STORAGE_PATH`` once, when crewai is imported,
and the config modules copy that value with a ``from`` import. Knowledge storage builds its
ChromaDB client from those defaults, so without help every test's knowledge would land in
whatever directory was current at import. The default RAG client CrewAI caches in a context
variable is built from the same frozen path.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from .environment import STORAGE_VARIABLE

# (module, sub-directory of the storage path it derives DEFAULT_STORAGE_PATH from)
FROZEN_PATHS: tuple[tuple[str, str], ...] = (
    ("crewai.rag.chromadb.constants", ""),
    ("crewai.rag.chromadb.config", ""),
    ("crewai.rag.qdrant.constants", "qdrant"),
    ("crewai.rag.qdrant.config", "qdrant"),
)
_MISSING = object()
# CrewAI's task output database (``crewai.memory.storage.kickoff_task_outputs_storage``), made
# at every kickoff in the storage directory. Creating it afresh (WAL mode, a table, each synced
# to disk) costs about 2 ms; a copy of an empty one made once per process, well under one.
TASK_OUTPUTS_MODULE = "crewai.memory.storage.kickoff_task_outputs_storage"
TASK_OUTPUTS_DB = "latest_kickoff_task_outputs.db"


def crewai_storage_path() -> str:
    """Where CrewAI puts storage for the current environment (what its import would freeze)."""
    try:
        from crewai_core.paths import db_storage_path

        return str(db_storage_path())
    except ImportError:  # pragma: no cover - crewai_core ships with crewai
        return os.environ.get(STORAGE_VARIABLE, "")


def _rag_context() -> Any:
    module = sys.modules.get("crewai.rag.config.utils")
    return getattr(module, "_rag_context", None)


def _client_path(context: Any) -> str | None:
    config = getattr(context, "config", None)
    settings = getattr(config, "settings", None)
    path = getattr(settings, "persist_directory", None)
    if path is None:
        options = getattr(config, "options", None)
        path = options.get("path") if isinstance(options, dict) else getattr(options, "path", None)
    return str(path) if path else None


@contextmanager
def storage_at(directory: Path) -> Iterator[Path]:
    """Point all of CrewAI's storage at ``directory`` until the block ends."""
    if not directory.is_absolute():
        directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    seed_task_outputs_db(directory)
    old_env = os.environ.get(STORAGE_VARIABLE)
    os.environ[STORAGE_VARIABLE] = str(directory)
    base = crewai_storage_path()
    patched: list[tuple[Any, Any]] = []
    frozen_before: set[str] = set()
    for name, sub in FROZEN_PATHS:
        module: Any = sys.modules.get(name)
        if module is None:
            continue  # imported later, it freezes the current (this block's) directory itself
        old = getattr(module, "DEFAULT_STORAGE_PATH", _MISSING)
        if isinstance(old, str):
            frozen_before.add(old)
        patched.append((module, old))
        module.DEFAULT_STORAGE_PATH = os.path.join(base, sub) if sub else base
    # A default RAG client cached by an earlier test still writes to that test's directory.
    variable = _rag_context()
    token = None
    if variable is not None and _client_path(variable.get()) in frozen_before - {base}:
        token = variable.set(None)
    try:
        yield directory
    finally:
        if token is not None and variable is not None:
            try:
                variable.reset(token)
            except ValueError:  # left in another context: clear instead of restoring
                variable.set(None)
        for module, old in patched:
            if old is _MISSING:
                delattr(module, "DEFAULT_STORAGE_PATH")
            else:
                module.DEFAULT_STORAGE_PATH = old
        if old_env is None:
            os.environ.pop(STORAGE_VARIABLE, None)
        else:
            os.environ[STORAGE_VARIABLE] = old_env


def seed_task_outputs_db(directory: Path) -> None:
    """Put an empty copy of CrewAI's task output database in a new storage ``directory``.

    Only once crewai has loaded that module: a test without crews must not import it. CrewAI
    opens the copy as its own (its schema is made by CrewAI's code, in this process); were the
    file renamed in a later CrewAI, the copy would just go unread.
    """
    module = sys.modules.get(TASK_OUTPUTS_MODULE)
    target = directory / TASK_OUTPUTS_DB
    if module is None or target.exists():
        return
    template = _empty_task_outputs_db(module.KickoffTaskOutputsSQLiteStorage)
    if template is not None and template.is_file():
        shutil.copyfile(template, target)


@cache
def _empty_task_outputs_db(storage_class: Any) -> Path | None:
    """The database as CrewAI makes it, once per process (``None``: CrewAI changed)."""
    folder = Path(tempfile.mkdtemp(prefix="crewguard-task-outputs-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    atexit.register(_remove_lock_file, _sqlite_lock(folder / TASK_OUTPUTS_DB))
    try:
        storage_class(db_path=str(folder / TASK_OUTPUTS_DB))
    except Exception:  # CrewAI makes the database itself, as before
        return None
    return folder / TASK_OUTPUTS_DB


def run_storage(directory: Path, number: int) -> Path:
    """The storage of run ``number`` of a repeated test, inside the test's ``directory``."""
    return directory / f"run-{number}"


_RUN_STORAGE = re.compile(r"run-\d+")


def remove_if_disposable(directory: Path) -> None:
    """Remove a test's storage ``directory`` if it holds nothing but CrewAI's task output
    database (the usual case); leave it otherwise, for the end of the session.

    Memory and knowledge stores stay: CrewAI and ChromaDB cache clients across tests by path,
    and a client whose files were removed fails the next test that reaches it ("attempt to
    write a readonly database"). The task output database is opened and closed per write.
    """
    databases = []
    for folder, folders, files in os.walk(directory):
        # Only the database's files, and the run-N folders of a repeated test: a store's
        # folder counts even while empty (a client may already hold its path).
        if any(not name.startswith(TASK_OUTPUTS_DB) for name in files) or any(
            not _RUN_STORAGE.fullmatch(name) for name in folders
        ):
            return
        if TASK_OUTPUTS_DB in files:
            databases.append(Path(folder) / TASK_OUTPUTS_DB)
    _remove(directory, [_sqlite_lock(database) for database in databases])


def remove_storage(directory: Path) -> None:
    """Remove a storage ``directory``, and the lock files CrewAI made for the stores in it
    (see ``_remove_lock_file``)."""
    names = []
    for folder, _, files in os.walk(directory):
        # As CrewAI names its locks: a SQLite database (task outputs, flow states) by its real
        # path, a LanceDB memory by its resolved folder, a Chroma store by the folder it was given.
        names += [_sqlite_lock(Path(folder) / name) for name in files if name.endswith(".db")]
        real = os.path.realpath(folder)
        names += [f"lancedb:{real}", f"chromadb:{folder}", f"chromadb:{real}"]
    _remove(directory, names)


def _sqlite_lock(database: Path) -> str:
    return f"sqlite:{os.path.realpath(database)}"


def _remove(directory: Path, lock_names: list[str]) -> None:
    for name in dict.fromkeys(lock_names):
        _remove_lock_file(name)
    shutil.rmtree(directory, ignore_errors=True)


def _remove_lock_file(lock_name: str) -> None:
    """Remove the file lock CrewAI made in the temp dir for a store, now gone with its test.

    ``crewai_core.lock_store`` (without Redis or a lock backend of the application's) locks a
    store through an empty file named after the store, and never removes it: one file per test
    and session would pile up in the temp dir. Named as ``lock_store.lock`` names it; a file
    that is not there (another backend, another naming) is simply not found.
    """
    channel = hashlib.md5(lock_name.encode(), usedforsecurity=False)
    lock_file = Path(tempfile.gettempdir()) / f"crewai:{channel.hexdigest()}.lock"
    try:
        if lock_file.stat().st_size == 0:  # a lock file holds nothing; anything else is not it
            lock_file.unlink()
    except OSError:
        pass


def remove_if_empty(directory: Path) -> None:
    """Remove ``directory`` if it holds nothing but its owner file (a run's own storage root,
    once its tests' went)."""
    from .environment import OWNER_FILE

    try:
        if set(os.listdir(directory)) <= {OWNER_FILE}:
            (directory / OWNER_FILE).unlink(missing_ok=True)
            directory.rmdir()
    except OSError:
        pass
