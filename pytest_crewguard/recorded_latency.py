"""The latency crewguard records with each answer, in a response header of the cassette.

Replay projects a run's real duration from these (``max_seconds`` checks the projection), so
a value that is no latency (``nan``, ``inf``, negative, text) is refused when the cassette
loads rather than read as one.
"""

from __future__ import annotations

import math

LATENCY_HEADER = "x-crewguard-latency-s"
MAX_LATENCY_S = 86_400.0  # a day: no provider answer takes longer


def latency_seconds(value: str | bytes | None) -> float | None:
    """The recorded latency, or ``None`` when ``value`` is absent or not a plausible one."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and 0.0 <= seconds <= MAX_LATENCY_S else None
