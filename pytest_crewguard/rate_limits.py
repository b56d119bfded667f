"""The gates on a run's rate: requests per minute on its projected timeline, and faults the
application could not get past."""

from __future__ import annotations

from collections.abc import Sequence

from .ledger import LLMCall
from .run import GuardedRun
from .verdict import Gate, Violation


def timeline(calls: Sequence[LLMCall]) -> list[tuple[float, LLMCall]]:
    """When each call would be sent in production, in seconds from the run's start.

    Calls are laid end to end: each starts after the waits before it (SDK backoff, CrewAI's
    ``max_rpm`` controller) and after the previous call's recorded latency. Concurrent calls
    are thereby spread out, so the rate it shows errs low only where calls really overlapped.
    """
    clock = 0.0
    found = []
    for call in calls:
        clock += call.waited_s
        found.append((clock, call))
        clock += call.recorded_latency_s or 0.0
    return found


def busiest_minutes(calls: Sequence[LLMCall], limit: int) -> list[tuple[int, list[tuple[float, LLMCall]]]]:
    """The minutes (counted from the run's start) in which more than ``limit`` calls are sent."""
    minutes: dict[int, list[tuple[float, LLMCall]]] = {}
    for start, call in timeline(calls):
        minutes.setdefault(int(start // 60), []).append((start, call))
    return [(m, sent) for m, sent in sorted(minutes.items()) if len(sent) > limit]


def rpm_violations(max_rpm: int | None, run: GuardedRun) -> list[Violation]:
    """``max_rpm``: the run sends more LLM requests in one minute than allowed."""
    if max_rpm is None:
        return []
    over = busiest_minutes(run.calls, max_rpm)
    if not over:
        return []
    minute, sent = over[0]
    lines = [
        f"{len(sent)} LLM requests in minute {minute + 1} of the run's projected timeline "
        f"({minute * 60}-{minute * 60 + 60} s), over max_rpm={max_rpm}:"
    ]
    lines += [f"    at {start:7.2f} s  {call.describe()}" for start, call in sent]
    lines.append(
        "  The provider would answer the requests over the limit with 429. Limit the crew's rate "
        "(Crew(max_rpm=...) or Agent(max_rpm=...)) or raise the provider limit."
    )
    if len(over) > 1:
        lines.append(f"  ({len(over) - 1} more minute{'s' if len(over) > 2 else ''} over the limit)")
    return [Violation(Gate.MAX_RPM, "\n".join(lines), {"minute": minute + 1, "requests": len(sent)})]


def fault_violations(run: GuardedRun) -> list[Violation]:
    """The SDK gave up on a request after the faults injected into it (``faults=``)."""
    return given_up_violations(run.gave_up, run.calls, "the crew")


def given_up_violations(gave_up: list[str], calls: list[LLMCall], who: str) -> list[Violation]:
    """``who`` (the crew, or LLM calls outside any crew) did not get past injected faults:
    the SDK gave up on the ``gave_up`` requests after its retries."""
    if not gave_up:
        return []
    rate_limited = any(text.startswith("429") for text in gave_up)
    what = "the provider's rate limit (429)" if rate_limited else "the provider's errors"
    lines = [
        f"{who} did not get past {what}: the SDK gave up on {len(gave_up)} "
        f"request{'s' if len(gave_up) > 1 else ''} after its retries:"
    ]
    lines += [f"    {i + 1}. {text}" for i, text in enumerate(gave_up[:10])]
    if len(gave_up) > 10:
        lines.append(f"    ... and {len(gave_up) - 10} more")
    answered = [c for c in calls if c.faults]
    if answered:
        lines.append("  calls answered after retries:")
        lines += [f"    {c.describe()}  after {', '.join(c.faults)}" for c in answered[:10]]
    lines.append(
        "  In production this run fails or degrades the same way: raise the LLM's max_retries, "
        "lower the request rate (max_rpm), or handle the error in the application."
    )
    return [Violation(Gate.PROVIDER_FAULT, "\n".join(lines), {"gave_up": len(gave_up)})]
