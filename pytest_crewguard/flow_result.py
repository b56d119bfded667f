"""``FlowRun``: one flow kickoff as crewguard saw it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .ledger import LLMCall, cost_exact, total_cost, total_tokens
from .run import GuardedRun


@dataclass
class FlowRun:
    """One flow kickoff: its return value, its final state, and every run and call inside it.

    ``projected_s`` is the local time plus the recorded provider latency of every call of the
    flow, direct ``LLM.call()`` s included (``None`` when a replayed call has no latency).
    """

    output: Any
    state: Any
    runs: list[GuardedRun]
    calls: list[LLMCall]
    elapsed_s: float
    projected_s: float | None
    flow_id: str | None = None
    error: BaseException | None = None
    name: str | None = None

    @property
    def cost(self) -> float:
        """USD of the flow's calls whose cost is known (see :attr:`cost_exact`)."""
        return total_cost(self.calls)

    @property
    def cost_exact(self) -> bool:
        return cost_exact(self.calls)

    @property
    def tokens(self) -> int:
        return total_tokens(self.calls)

    @property
    def llm_calls(self) -> int:
        return len(self.calls)
