"""Dollar amounts: how they are summed and shown, the same for a call, a test and a session."""

from __future__ import annotations

from collections.abc import Iterable

# A budget above this is a typo (a misplaced exponent), not a budget.
MAX_BUDGET = 1e9


def usd(amount: float) -> str:
    """Dollars with enough digits to tell sub-cent calls apart: ``$0.000540``."""
    return f"${amount:.6f}"


def sum_usd(amounts: Iterable[float]) -> float:
    """The sum of dollar amounts, rounded past float noise (0.1 + 0.2 is 0.3 here)."""
    return round(sum(amounts), 10)
