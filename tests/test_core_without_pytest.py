"""The core runs without pytest: only the plugin turns its verdicts into pytest outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every module of the package and its sub-packages (the command's too), except the pytest
# layer and `__main__`, which runs the command when imported.
CORE = sorted(
    "pytest_crewguard." + ".".join(p.relative_to(ROOT / "pytest_crewguard").with_suffix("").parts)
    for p in (ROOT / "pytest_crewguard").rglob("*.py")
    if p.stem not in {"__init__", "plugin", "options", "__main__"} and "testing" not in p.parts
)


def test_no_core_module_imports_pytest() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {CORE!r}:\n"
        "    importlib.import_module(name)\n"
        "    assert 'pytest' not in sys.modules and '_pytest' not in sys.modules, name\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
