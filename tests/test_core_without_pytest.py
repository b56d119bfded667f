"""The core runs without pytest: only the plugin turns its verdicts into pytest outcomes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE = sorted(
    f"pytest_crewguard.{p.stem}"
    for p in (ROOT / "pytest_crewguard").glob("*.py")
    if p.stem not in {"__init__", "plugin", "options"}
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
