"""The session: every guarded test's numbers and verdict, collected across the run."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .ledger import LLMCall, total_cost, unpriced_models
from .pricing import PriceTable
from .run import GuardedRun


@dataclass
class TestRecord:
    """One guarded test, as the end-of-run table and the JSON report show it."""

    nodeid: str
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced_models: list[str] = field(default_factory=list)
    max_iterations: int = 0
    max_iter_hits: int = 0
    elapsed_s: float = 0.0
    projected_s: float | None = None
    runs: int = 0
    outcome: str = "passed"
    failed_gates: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know, once per run

    __test__ = False  # not a pytest test class, whatever its name

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def verdict(self) -> str:
        if self.failed_gates:
            return "FAILED " + ",".join(dict.fromkeys(self.failed_gates))
        return self.outcome.upper() if self.outcome != "passed" else "passed"

    @classmethod
    def build(cls, nodeid: str, calls: list[LLMCall], runs: list[GuardedRun]) -> TestRecord:
        projected = [r.projected_s for r in runs]
        return cls(
            nodeid=nodeid,
            llm_calls=len(calls),
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            cost=total_cost(calls),
            unpriced_models=unpriced_models(calls),
            max_iterations=max((n for r in runs for n in r.iterations.values()), default=0),
            max_iter_hits=sum(len(r.max_iter_hits) for r in runs),
            elapsed_s=sum(r.elapsed_s for r in runs),
            projected_s=None if not runs or None in projected else sum(p or 0.0 for p in projected),
            runs=len(runs),
            calls=[asdict(c) for c in calls],
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens"] = self.tokens
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TestRecord:
        """The inverse of :meth:`to_json` (how xdist workers hand results to the controller)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class CrewguardSession:
    """Results of every guarded test of this pytest session (merged from xdist workers)."""

    prices: PriceTable
    budget: float | None = None
    records: dict[str, TestRecord] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: TestRecord) -> None:
        with self._lock:
            self.records[record.nodeid] = record

    def fail(self, nodeid: str, outcome: str) -> None:
        """Mark a test's outcome (``failed``/``error``) once its report is known."""
        with self._lock:
            record = self.records.get(nodeid)
            if record is not None and record.outcome == "passed":
                record.outcome = outcome

    @property
    def total_cost(self) -> float:
        return round(sum(r.cost for r in self.records.values()), 10)

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({m for r in self.records.values() for m in r.unpriced_models})

    @property
    def over_budget(self) -> float | None:
        """By how many dollars the session went over ``--crewguard-max-cost`` (else ``None``)."""
        if self.budget is None or self.total_cost <= self.budget:
            return None
        return self.total_cost - self.budget
