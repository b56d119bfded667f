"""Where a test's cassette lives.

Default: ``<cassette dir>/<test file path without .py>/<test name>.yaml``, the test file path
taken relative to the rootdir and parametrize ids made file-safe; the marker's ``cassette=``
names a path relative to the cassette dir instead.
"""

from __future__ import annotations

import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+")


def file_safe(name: str) -> str:
    """``test_x[gpt-4o/mini 1]`` -> ``test_x-gpt-4o_mini_1``."""
    name = name.replace("[", "-").replace("]", "")
    return _UNSAFE.sub("_", name).strip("_.") or "test"


def cassette_path(cassette_dir: Path, nodeid: str, override: str | None = None) -> Path:
    """The cassette file of the test ``nodeid`` (``path/to/test_file.py::Class::test[id]``)."""
    if override:
        path = Path(override)
        return path if path.is_absolute() else cassette_dir / path
    file_part, _, name_part = nodeid.partition("::")
    test_file = Path(file_part)
    folder = test_file.with_suffix("") if test_file.suffix == ".py" else test_file
    test_name = file_safe(name_part.replace("::", "."))
    return cassette_dir / folder / f"{test_name}.yaml"
