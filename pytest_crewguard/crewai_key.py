"""CrewAI's per-user encryption key, made before pytest-xdist's workers start.

Importing crewai builds its trace listener, which reads its Fernet key from the user's data
directory (``crewai_core.token_manager``) or, on a machine's first run, creates it. Two processes
creating it at once race: one creates the file (``O_EXCL``), the other reads it before anything
is written and raises "Failed to create or read encryption key", so the whole collection of
its xdist worker fails. A fresh CI runner with ``-n auto`` meets exactly that. The xdist
controller makes the key once, before the workers start, as CrewAI's own first import would.
"""

from __future__ import annotations

__all__ = ["ensure_crewai_key"]


def ensure_crewai_key() -> None:
    """Make CrewAI's key if it is missing (``crewai_core`` only: crewai itself is not imported)."""
    try:
        from crewai_core.token_manager import TokenManager
    except ImportError:  # an older or newer CrewAI without it: nothing to race on
        return
    try:
        TokenManager()
    except Exception:  # left for CrewAI's own import to report, where it happens
        pass
