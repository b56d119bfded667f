"""Where a test's cassette lives.

Default: ``<cassette dir>/<test file path without .py>/<test name>.yaml``, the test file path
taken relative to the rootdir and parametrize ids made file-safe; the marker's ``cassette=``
names a path relative to the cassette dir instead.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def file_safe(name: str) -> str:
    """``test_x[gpt-4o/mini 1]`` -> ``test_x-gpt-4o_mini_1``."""
    name = name.replace("[", "-").replace("]", "")
    return _UNSAFE.sub("_", name).strip("_.") or "test"


def check_inside(cassette_dir: Path, override: str) -> Path:
    """The marker's ``cassette=`` path, refused unless it stays inside the cassette dir.

    A marker must not read or overwrite files elsewhere (``../../.env``, ``/etc/...``); the
    cassette dir itself may be anywhere the user points ``--crewguard-cassette-dir``.
    """
    if not override.strip():
        raise ConfigError(
            "argument cassette='': expected a path relative to the cassette dir, "
            'e.g. cassette="shared/research.yaml"'
        )
    path = Path(override)
    full = path if path.is_absolute() else cassette_dir / path
    inside = Path(os.path.realpath(cassette_dir))
    resolved = Path(os.path.realpath(full))
    if resolved != inside and inside not in resolved.parents:
        raise ConfigError(
            f"argument cassette={override!r}: {os.path.normpath(full)} is outside the cassette "
            f"dir {cassette_dir}; a marker's cassette path must stay inside it. Give a path "
            'relative to the cassette dir, e.g. cassette="shared/research.yaml", or move the '
            "whole cassette dir with --crewguard-cassette-dir"
        )
    return full


def cassette_path(cassette_dir: Path, nodeid: str, override: str | None = None) -> Path:
    """The cassette file of the test ``nodeid`` (``path/to/test_file.py::Class::test[id]``)."""
    if override:
        return check_inside(cassette_dir, override)
    file_part, _, name_part = nodeid.partition("::")
    # A test file outside the rootdir has a nodeid like ../other/test_x.py: keep it inside.
    given = Path(file_part)
    parts = ["__" if part == ".." else part for part in given.parts if part != given.anchor]
    test_file = Path(*parts) if parts else Path()
    folder = test_file.with_suffix("") if test_file.suffix == ".py" else test_file
    # A parametrize id may hold a secret (a key passed as a parameter): not into a file name.
    from .scrubbing import scrub_text  # not at import: scrubbing's modules import this one
    from .secret_values import secret_env_values

    test_name = file_safe(scrub_text(name_part, secret_env_values()).replace("::", "."))
    if len(test_name.encode()) > _LONGEST:  # file systems refuse names over 255 bytes
        digest = hashlib.sha256(name_part.encode()).hexdigest()[:12]
        test_name = f"{test_name.encode()[:_LONGEST - 13].decode(errors='ignore')}-{digest}"
    return cassette_dir / folder / f"{test_name}.yaml"


_LONGEST = 255 - len(".yaml")  # the longest test name a file name holds (bytes)


def shared_defaults(cassettes: Iterable[tuple[str, Path]]) -> str | None:
    """Two tests whose default cassettes are one file, as a message (``None``: no two are).

    Parametrize ids that differ only in characters a file name cannot hold (``AI/agents`` and
    ``AI agents``) land on one file: the second test would replay, or overwrite, the first's.
    """
    seen: dict[Path, str] = {}
    for nodeid, path in cassettes:
        first = seen.setdefault(path, nodeid)
        if first != nodeid:
            return (
                f"{first} and {nodeid} would record into one cassette, {path}: their names "
                "differ only in characters a file name cannot hold. Give them distinct ids "
                "(@pytest.mark.parametrize(..., ids=[...])), or each its own file with "
                '@pytest.mark.crewguard(cassette="...").'
            )
    return None
