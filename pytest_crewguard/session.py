"""The session: every guarded test's numbers and verdict, collected across the run."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .ledger import (
    LLMCall,
    cost_exact,
    free_models,
    total_cost,
    total_tokens,
    unpriced_models,
    usage_unknown_calls,
)
from .money import sum_usd, usd
from .pricing import PriceTable
from .run import GuardedRun


@dataclass
class GuardedTest:
    """One guarded test, as the end-of-run table and the JSON report show it.

    Token and cost totals cover the calls whose numbers are known; ``usage_unknown`` counts the
    calls without a usage block and ``unpriced_models`` the models without a price, and
    ``cost_exact`` is true only when there are neither.
    """

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
    xfailed: bool = False  # pytest expected this test to fail (xfail), and it did
    failed_gates: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    usage_unknown: int = 0
    cost_exact: bool = True
    free_models: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know, once per run
    retries: int = 0  # requests the SDKs sent again after a provider fault (faults=)
    unanswered_faults: int = 0  # fault answers no answer of the request followed (the SDK gave up)
    rate_limited_calls: int = 0
    waited_s: float = 0.0  # retry backoff and max_rpm waits, in the projected time
    cassette: str | None = None  # as the user names it: relative to the rootdir when under it
    limits: dict[str, Any] = field(default_factory=dict)  # the marker's limits that were set
    iterations: list[dict[str, Any]] = field(default_factory=list)  # per agent and task, most in a run
    # Each run's tasks, tool calls and LLM calls with their messages, for the HTML report only
    # (filled when it is asked for; not in the JSON report).
    timeline: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: int = 0
    tool_errors: int = 0

    __test__ = False  # not a pytest test class, whatever its name

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def failed(self) -> bool:
        """Whether the test failed (a gate, an error), an expected failure (xfail) aside."""
        return not self.xfailed and bool(self.failed_gates or self.outcome in ("failed", "error"))

    @property
    def verdict(self) -> str:
        gates = ",".join(dict.fromkeys(self.failed_gates))
        if self.xfailed:  # as pytest says it: an expected failure, whatever failed
            return f"XFAIL {gates}".strip()
        if self.failed_gates:
            return "FAILED " + gates
        return self.outcome.upper() if self.outcome != "passed" else "passed"

    @classmethod
    def build(cls, nodeid: str, calls: list[LLMCall], runs: list[GuardedRun]) -> GuardedTest:
        projected = [r.projected_s for r in runs]
        return cls(
            nodeid=nodeid,
            llm_calls=len(calls),
            input_tokens=total_tokens(calls, "input_tokens"),
            output_tokens=total_tokens(calls, "output_tokens"),
            cost=total_cost(calls),
            unpriced_models=unpriced_models(calls),
            max_iterations=max((n for r in runs for n in r.iterations.values()), default=0),
            max_iter_hits=sum(len(r.max_iter_hits) for r in runs),
            iterations=_iterations(runs),
            elapsed_s=sum(r.elapsed_s for r in runs),
            projected_s=_projected(projected, calls),
            runs=len(runs),
            calls=[asdict(c) for c in calls],
            cached_tokens=total_tokens(calls, "cached_tokens"),
            cache_write_tokens=total_tokens(calls, "cache_write_tokens"),
            reasoning_tokens=total_tokens(calls, "reasoning_tokens"),
            usage_unknown=len(usage_unknown_calls(calls)),
            cost_exact=cost_exact(calls),
            free_models=free_models(calls),
            retries=sum(r.retries for r in runs),
            rate_limited_calls=sum(r.rate_limited_calls for r in runs),
            waited_s=sum(r.waited_s for r in runs),
            tool_calls=sum(len(r.tool_calls) for r in runs),
            tool_errors=sum(1 for r in runs for c in r.tool_calls if c.error is not None),
        )

    def to_json(self, *, timeline: bool = False) -> dict[str, Any]:
        """The record as JSON data; ``timeline`` keeps the runs' messages (for the HTML report)."""
        data = asdict(self)
        if not timeline:
            del data["timeline"]
        data["tokens"] = self.tokens
        data["verdict"] = self.verdict
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GuardedTest:
        """The inverse of :meth:`to_json` (how xdist workers hand results to the controller)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _projected(projected: list[float | None], calls: list[LLMCall]) -> float | None:
    """The test's projected seconds: its runs', or, for calls made outside any run (a direct
    ``LLM.call()``), their recorded latencies; ``None`` when one is not known."""
    if not projected:
        latencies = [c.recorded_latency_s for c in calls]
        return None if not calls or None in latencies else sum(x or 0.0 for x in latencies)
    return None if None in projected else sum(p or 0.0 for p in projected)


def _iterations(runs: list[GuardedRun]) -> list[dict[str, Any]]:
    """The most iterations each agent made on each task in any one run."""
    most: dict[tuple[str | None, str | None], int] = {}
    for run in runs:
        for key, n in run.iterations.items():
            most[key] = max(most.get(key, 0), n)
    return [{"agent": agent, "task": task, "iterations": n} for (agent, task), n in most.items()]


@dataclass
class CrewguardSession:
    """Results of every guarded test of this pytest session (merged from xdist workers)."""

    prices: PriceTable
    budget: float | None = None
    records: dict[str, GuardedTest] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: GuardedTest) -> None:
        with self._lock:
            self.records[record.nodeid] = record

    @property
    def total_cost(self) -> float:
        """USD over every test's known costs (see :attr:`cost_exact`)."""
        return sum_usd(r.cost for r in self.records.values())

    def total(self, name: str) -> int:
        """The sum of one count of :class:`GuardedTest` (``llm_calls``, ``input_tokens``...)
        over every test; costs are summed by :attr:`total_cost`."""
        return sum(int(getattr(r, name)) for r in self.records.values())

    @property
    def cost_exact(self) -> bool:
        """Whether :attr:`total_cost` covers every call (all priced, all with usage)."""
        return all(r.cost_exact for r in self.records.values())

    @property
    def unpriced_models(self) -> list[str]:
        return sorted({m for r in self.records.values() for m in r.unpriced_models})

    @property
    def usage_unknown(self) -> int:
        """Calls of the session whose response had no usage block."""
        return self.total("usage_unknown")

    @property
    def over_budget(self) -> float | None:
        """By how many dollars the session went over ``--crewguard-max-cost`` (else ``None``)."""
        if self.budget is None or self.total_cost <= self.budget:
            return None
        return self.total_cost - self.budget

    def budget_unknown(self) -> str | None:
        """Why the session budget cannot be checked (unpriced models, calls without usage),
        as one message; ``None`` when it can (or there is no budget)."""
        if self.budget is None:
            return None
        from .limits import unpriced_message

        gate = f"--crewguard-max-cost={usd(self.budget)}"
        problems = []
        if self.unpriced_models:
            problems.append(unpriced_message(self.unpriced_models, gate))
        if self.usage_unknown:
            tests = [r.nodeid for r in self.records.values() if r.usage_unknown]
            problems.append(
                f"{gate} is set but {self.usage_unknown} LLM call(s) had no readable usage in the response, "
                f"so the session cost is unknown (never counted as 0); in: {', '.join(sorted(tests))}"
            )
        return "\n".join(problems) or None
