"""Whether a report can be written where an option names it, checked before the run."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def output_problem(path: Path) -> str | None:
    """Why a file cannot be written at ``path`` (``None``: it can, as far as can be told now)."""
    if str(path).strip() in ("", "."):
        return "no file named"
    try:
        info = path.stat()  # through a symlink: its target is what is written
    except FileNotFoundError:
        info = None
    except OSError as err:
        return f"cannot reach {path} ({err.strerror})"
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            return f"{path} is a directory"
        if not stat.S_ISREG(info.st_mode):
            return f"{path} is not a regular file"
    parent = path.resolve().parent
    while not parent.exists() and parent != parent.parent:  # missing folders are made
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{parent} is not writable"
    return None
