"""A finished guard's record for the end-of-run table: its numbers, verdict, notes and timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .session import GuardedTest

if TYPE_CHECKING:
    from .guard_session import GuardSession


def record_of(guard: GuardSession, notes: list[str]) -> GuardedTest:
    """``guard``'s record, built once its verdict is final; ``notes`` go before its own."""
    record = GuardedTest.build(guard.nodeid, guard.calls(), guard.runs())
    record.failed_gates = guard.verdict.gate_names
    record.outcome = guard.verdict.outcome
    record.xfailed = guard.verdict.xfailed
    if guard.wire is not None:  # faults after which no answer came count in no call's retries
        record.unanswered_faults = max(0, len(guard.wire.fault_log.faults) - record.retries)
    record.notes = [*notes, *guard.notes()]
    record.cassette = guard.display(guard.cassette_path)
    record.limits = guard.spec.limits()
    if guard.settings.html is not None and guard.wire is not None:
        from .html_timeline import timeline

        record.timeline = timeline(guard.runs(), guard.calls(), list(guard.wire.calls), guard.events)
    return record


def notes(guard: GuardSession) -> list[str]:
    """What this test's numbers rest on that a reader should know (shown under the table)."""
    found = []
    if not guard.match_config.checks_body:
        found.append(
            f"replayed with match_on={list(guard.match_config.match_on)}: their request bodies were "
            "not checked against the recording (a changed prompt is not a miss)"
        )
    if guard.spec.faults is not None and guard.wire is not None and guard.wire.injector is None:
        found.append(
            "recorded with faults= set: faults are answered in replay only, so this run "
            "met none of them; replay the test to exercise them"
        )
    if guard.wire is not None and guard.wire.unrecorded_preflights:
        found.append(
            "sent token-count preflights their cassettes do not hold: answered as unavailable, "
            "so CrewAI estimated the counts itself (record again to replay the real ones)"
        )
    return found
