"""Report dicts built in-process, as a run would write them: one record per (nodeid, cost...)."""

from __future__ import annotations

from typing import Any

from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.report import report_data
from pytest_crewguard.session import CrewguardSession, GuardedTest


def record(nodeid: str, cost: float = 0.01, tokens: int = 1000, **fields: Any) -> GuardedTest:
    """A test with one priced call of ``cost`` dollars and ``tokens`` tokens (3/4 input)."""
    call = {"model": "gpt-4o-mini", "provider": "openai", "input_tokens": tokens * 3 // 4,
            "output_tokens": tokens - tokens * 3 // 4, "cost": cost, "priced": True, "usage_known": True}
    values: dict[str, Any] = {
        "llm_calls": 1, "input_tokens": call["input_tokens"], "output_tokens": call["output_tokens"],
        "cost": cost, "max_iterations": 1, "elapsed_s": 0.1, "projected_s": 1.0, "runs": 1,
        "calls": [call], "cassette": f"cassettes/{nodeid.split('::')[-1]}.yaml",
        "limits": {"max_cost": 0.05}, "iterations": [{"agent": "A", "task": "t", "iterations": 1}],
    }
    values.update(fields)
    return GuardedTest(nodeid=nodeid, **values)


def report(*records: GuardedTest, budget: float | None = None, prices: PriceTable | None = None
           ) -> dict[str, Any]:
    """The JSON report of a session holding ``records``."""
    session = CrewguardSession(prices=prices or PriceTable(), budget=budget)
    for r in records:
        session.add(r)
    return report_data(session)
