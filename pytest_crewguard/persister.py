"""Reading and writing cassette files: readable YAML, atomic writes, clear errors.

vcrpy's own filesystem persister writes in place (a crash leaves half a file), treats an
unreadable cassette as empty (so recording silently overwrites it) and emits long prompts as
escaped one-line strings (``cassette_yaml`` breaks them into reviewable lines, byte-exact).
This persister keeps vcrpy's cassette format, so plain vcrpy and pytest-recording still load
the files, and changes only those three things, plus: every write
is scrubbed of secrets, locked and merged with other tests' writes of the same cassette
(``cassette_writers``), and a malformed interaction is named at load.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml
from vcr.persisters.filesystem import CassetteNotFoundError
from vcr.request import Request
from vcr.serialize import CASSETTE_FORMAT_VERSION, serialize

from . import cassette_writers as writers
from .cassette_yaml import ReadableYamlSerializer, _ReadableDumper
from .errors import CassetteError
from .interaction_checks import interaction_problem
from .scrubbing import scrub_interaction
from .secret_refusal import refuse_secrets

__all__ = [
    "AtomicYamlPersister", "ReadableYamlSerializer", "_ReadableDumper", "atomic_write", "read_interactions",
]


_RECORD_AGAIN = (
    "Restore it from version control, or delete it and record again with "
    "--crewguard-record-mode=once."
)


def _interactions_of(path: Path, data: Any) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it is YAML but not a vcrpy cassette "
            f"(expected a mapping with a list of 'interactions'). {_RECORD_AGAIN}"
        )
    version = data.get("version", CASSETTE_FORMAT_VERSION)
    if version != CASSETTE_FORMAT_VERSION or isinstance(version, bool):
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it says format version {version!r}, and "
            f"crewguard reads vcrpy's version {CASSETTE_FORMAT_VERSION}. {_RECORD_AGAIN}"
        )
    interactions: list[Any] = data["interactions"]
    for number, interaction in enumerate(interactions, 1):
        problem = interaction_problem(interaction)
        if problem:
            raise CassetteError(
                f"crewguard cannot load cassette {path}: interaction {number} {problem}. "
                f"{_RECORD_AGAIN}"
            )
    return interactions


def _parse(path: Path, text: str, serializer: Any) -> list[Any]:
    conflict = _conflict_line(text)
    if conflict:
        # Markers inside a quoted body still parse as YAML: the cassette would load with a
        # half-merged answer and wrong token counts.
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it holds git merge-conflict markers (line "
            f"{conflict}). Resolve the conflict (keep one side), or take one side with git "
            "checkout --ours/--theirs and record again with --crewguard-record-mode=rewrite."
        )
    try:
        data = serializer.deserialize(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it is not valid YAML{at} "
            f"({getattr(err, 'problem', None) or err}). {_RECORD_AGAIN}"
        ) from err
    return _interactions_of(path, data)


def _conflict_line(text: str) -> int | None:
    """The line of the first git conflict marker pair (``<<<<<<<`` then ``>>>>>>>``), if any."""
    start = 0 if text.startswith("<<<<<<< ") else text.find("\n<<<<<<< ") + 1
    if start == 0 and not text.startswith("<<<<<<< "):
        return None
    if text.find("\n>>>>>>> ", start) < 0:
        return None
    return text.count("\n", 0, start) + 1


# Parsed cassettes by file identity: a cassette shared by many tests is parsed once per session.
_PARSED: OrderedDict[tuple[str, int, int, int], tuple[str, list[Any]]] = OrderedDict()
_PARSED_KEEP = 16
_parsed_lock = threading.Lock()


def _parsed(path: Path, serializer: Any) -> tuple[str, list[Any]] | None:
    """The text and interactions of the cassette at ``path`` (``None``: no cassette), parsed once
    for as long as the file keeps its inode, size and modification time."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise CassetteError(f"crewguard cannot read cassette {path}: {err}") from err
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it is {kind}, not a cassette file. Move it "
            "away, or give the test another cassette with @pytest.mark.crewguard(cassette=...)."
        )
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    with _parsed_lock:
        cached = _PARSED.get(key)
        if cached is not None:
            _PARSED.move_to_end(key)
            return cached
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CassetteError(f"crewguard cannot read cassette {path}: {err}") from err
    except UnicodeDecodeError as err:
        raise CassetteError(
            f"crewguard cannot load cassette {path}: it is not UTF-8 text ({err}). {_RECORD_AGAIN}"
        ) from err
    interactions = _parse(path, text, serializer) if text.strip() else []
    with _parsed_lock:
        _PARSED[key] = (text, interactions)
        while len(_PARSED) > _PARSED_KEEP:
            _PARSED.popitem(last=False)
    return text, interactions


def _fresh_response(response: dict[str, Any]) -> dict[str, Any]:
    """A response of the parse cache, copied as deep as loading changes it (not deeper)."""
    body = dict(response["body"])
    if isinstance(body.get("string"), str):
        body["string"] = body["string"].encode("utf-8")
    status, headers = dict(response["status"]), dict(response["headers"])
    return {**response, "status": status, "headers": headers, "body": body}


class _Capture:
    """A vcrpy serializer that hands back the data instead of text."""

    @staticmethod
    def serialize(data: Any) -> Any:
        return data


class AtomicYamlPersister:
    """vcrpy persister: atomic, locked, merging writes; secrets scrubbed or refused; a corrupt
    or malformed file is an error naming it (and left as it was)."""

    @classmethod
    def load_cassette(cls, cassette_path: str | os.PathLike[str], serializer: Any) -> Any:
        path = Path(cassette_path)
        parsed = _parsed(path, serializer)
        if parsed is None or not parsed[0].strip():
            writers.loaded(path, None)
            raise CassetteNotFoundError()
        text, interactions = parsed
        writers.loaded(path, text)
        requests = [Request._from_dict(dict(i["request"])) for i in interactions]
        responses = [_fresh_response(i["response"]) for i in interactions]
        return requests, responses

    @staticmethod
    def save_cassette(
        cassette_path: str | os.PathLike[str], cassette_dict: dict[str, Any], serializer: Any
    ) -> None:
        path = Path(cassette_path)
        if path.suffix.lower() == ".json":  # YAML under a .json name would break its other readers
            raise CassetteError(writers.json_cassette_message(path))
        mine = [scrub_interaction(i) for i in serialize(cassette_dict, _Capture)["interactions"]]
        with writers.locked(path):
            writers.remove_leftovers(path)
            writers.check_no_conflict(path, str(path))
            before = writers.loaded_text(path)
            on_disk: list[Any] | None = None
            if path.is_file():
                current = path.read_text(encoding="utf-8")
                if current.strip() and current != before:
                    on_disk = _parse(path, current, serializer)
            loaded = _parse(path, before, serializer) if on_disk and before else None
            interactions = writers.merge(mine, on_disk, loaded)
            data = serializer.serialize({"version": CASSETTE_FORMAT_VERSION, "interactions": interactions})
            refuse_secrets(str(path), data, interactions)
            atomic_write(path, data)
            writers.wrote(path, data)


def atomic_write(path: Path, text: str) -> None:
    """Write beside the target, then rename over it: readers never see half a file.

    A symlink is written through (its target is replaced, the link stays); anything but a
    regular file is refused, not replaced. The file keeps the mode it had; a new file gets the
    usual mode for the umask. Characters UTF-8 cannot hold (a lone surrogate from a model's
    escaped JSON) are written as backslash escapes.
    """
    path = Path(os.path.realpath(path))
    try:
        info: os.stat_result | None = path.stat()
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode):
        directory = stat.S_ISDIR(info.st_mode)
        what = "a directory" if directory else "not a regular file"
        raise OSError(errno.EISDIR if directory else errno.EINVAL, f"{what}, not replaced", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(info.st_mode) if info is not None else None
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # 0o666 minus the umask, as open() would give; mkstemp would make it 0600.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode is not None and hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_interactions(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The interactions of the cassette at ``path``, as stored (request and response mappings).

    Raises :class:`FileNotFoundError` when there is no such file and
    :class:`~pytest_crewguard.errors.CassetteError` naming the file and the problem when it
    cannot be read, is not YAML or is not a vcrpy cassette.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no cassette at {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise CassetteError(f"crewguard cannot read cassette {file}: {err}") from err
    except UnicodeDecodeError as err:
        raise CassetteError(
            f"crewguard cannot load cassette {file}: it is not UTF-8 text ({err}). {_RECORD_AGAIN}"
        ) from err
    if not text.strip():
        # A cassette crewguard or vcrpy wrote always names its interactions, even none.
        raise CassetteError(
            f"crewguard cannot load cassette {file}: it is empty (no YAML at all, not even an "
            f"empty list of interactions). {_RECORD_AGAIN}"
        )
    return _parse(file, text, ReadableYamlSerializer)
