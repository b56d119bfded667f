"""pytest-crewguard: offline, deterministic regression tests for CrewAI crews.

Use the ``@pytest.mark.crewguard(...)`` marker and the ``crewguard`` fixture; the names below
are for type hints. They are loaded on first use, so the plugin itself stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["CrewGuard", "FlowRun", "GuardedRun", "LLMCall", "__version__"]

if TYPE_CHECKING:
    from .flow_result import FlowRun
    from .guard import CrewGuard
    from .ledger import LLMCall
    from .run import GuardedRun

_LAZY = {"CrewGuard": "guard", "FlowRun": "flow_result", "GuardedRun": "run", "LLMCall": "ledger"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
