"""One test's verdict: the gates it failed, each violation as a record, and its outcome.

The guard builds it while the test runs; the end-of-run table, the JSON report and xdist's
hand-over read it once, at teardown. :class:`GateFailure` is how the core says "this test
fails": the pytest plugin turns it into the test's failure, with the same text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .printable import printable


class Gate(StrEnum):
    """Every gate a test can fail, by the name the table and the JSON report show."""

    MAX_COST = "max_cost"
    MAX_TOKENS = "max_tokens"
    MAX_LLM_CALLS = "max_llm_calls"
    MAX_ITERATIONS = "max_iterations"
    MAX_ITER = "max_iter"
    MAX_SECONDS = "max_seconds"
    OUTPUT = "output"
    REPEAT = "repeat"
    MAX_MEMORY_GROWTH = "max_memory_growth"
    REUSED_OBJECT = "reused_object"
    CASSETTE_MISS = "cassette_miss"
    TRAFFIC_NOT_SEEN = "traffic_not_seen"
    EVENTS_MISSING = "events_missing"
    PROVIDER_ERROR = "provider_error"
    UNPRICED = "unpriced"
    USAGE_UNKNOWN = "usage_unknown"
    PROVIDER_FAULT = "provider_fault"
    MAX_RPM = "max_rpm"
    FORBIDDEN_TOOL = "forbidden_tool"
    MAX_TOOL_CALLS = "max_tool_calls"
    TOOL_ERROR = "tool_error"
    UNFINISHED_KICKOFF = "unfinished_kickoff"


@dataclass(frozen=True)
class Violation:
    """One gate crossed: which, the message the user reads, and optional numbers behind it."""

    gate: Gate
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class GateFailure(BaseException):
    """The test fails on these violations; ``str()`` is the text the user reads.

    A ``BaseException``, like pytest's own failure outcome: an application's ``except Exception``
    around a kickoff must not swallow a gate's verdict.
    """

    def __init__(self, violations: Sequence[Violation], message: str | None = None) -> None:
        self.violations = list(violations)
        # Recorded text (an answer, a tool's result) is quoted in messages: no escape sequences.
        self.message = printable(message if message is not None else joined(self.violations))
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


def joined(violations: Iterable[Violation]) -> str:
    """Several violations as one failure text."""
    return "crewguard: " + "\n".join(v.message for v in violations)


OUTCOMES = ("passed", "failed", "error", "skipped")


@dataclass
class Verdict:
    """The one place a guarded test's outcome and failed gates are kept."""

    outcome: str = "passed"
    failed_gates: list[Gate] = field(default_factory=list)
    xfailed: bool = False  # pytest expected the failure (xfail): the run does not fail on it
    raised: list[str] = field(default_factory=list)  # the failures' messages, first first

    def new(self, violations: Iterable[Violation]) -> list[Violation]:
        """The violations of gates this test has not failed yet (each is told once)."""
        return [v for v in violations if v.gate not in self.failed_gates]

    def failure(self, violations: Sequence[Violation], message: str | None = None) -> GateFailure:
        """Record the violations' gates and return the failure to raise."""
        self.failed_gates.extend(v.gate for v in violations)
        failure = GateFailure(violations, message)
        self.raised.append(failure.message)
        return failure

    def swallowed(self) -> GateFailure | None:
        """The test body returned although crewguard failed it (its code caught the failure, an
        ``except BaseException``): the failure again, so that pytest and the table agree."""
        if not self.raised:
            return None
        return GateFailure([], "crewguard: the test's code caught crewguard's failure and went on; the "
                               "test fails on it all the same:\n" + self.raised[0])

    def mark(self, outcome: str) -> None:
        """The test's report said ``outcome``; the first non-passing outcome is kept."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if self.outcome == "passed":
            self.outcome = outcome

    @property
    def gate_names(self) -> list[str]:
        return [g.value for g in self.failed_gates]
