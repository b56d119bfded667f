"""``GuardedRun``: one crew kickoff as crewguard saw it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import CrewEvent
from .ledger import LLMCall, cost_exact, total_cost, total_tokens, unpriced_models, usage_unknown_calls
from .tool_assertions import Expected, assert_tools
from .tool_calls import Delegation, ToolInvocation

AgentTask = tuple[str | None, str | None]


@dataclass
class GuardedRun:
    """The result of one kickoff: the crew's output plus every LLM call it made.

    ``projected_s`` is what the run would take against the live provider: the local time plus
    the provider latency recorded for each replayed call (``None`` when the cassette has no
    latencies), plus :attr:`waited_s`: the SDKs' retry backoff (``retry-after`` included) and
    CrewAI's ``max_rpm`` waits, which replay does not sleep. Calls that ran concurrently are
    added up, so it errs on the slow side.
    """

    output: Any
    calls: list[LLMCall]
    elapsed_s: float
    projected_s: float | None
    kickoff_id: str | None = None
    tool_events: list[CrewEvent] = field(default_factory=list)
    error: BaseException | None = None
    rootdir: Path | None = None  # where relative schema file paths start
    stream: Any = None  # a streaming crew's CrewStreamingOutput, read to its end: .chunks
    waited_s: float = 0.0  # seconds of SDK backoff and max_rpm waits (virtual in replay)
    gave_up: list[str] = field(default_factory=list)  # faults after which no answer came
    # When only some calls have a recorded latency, projected_s is None and this is what the
    # others add up to: the run takes at least this long (max_seconds checks it).
    projected_floor_s: float | None = None

    @property
    def retries(self) -> int:
        """Requests the SDKs sent again after a fault answer, over the run's answered calls."""
        return sum(c.retries for c in self.calls)

    @property
    def rate_limited_calls(self) -> int:
        """Calls the provider answered with a 429 at least once before answering them."""
        return sum(1 for c in self.calls if c.rate_limited)
    crew: str | None = None  # the crew's name; for an Agent.kickoff() run, None
    agent: str | None = None  # for an Agent.kickoff() run: the agent's role
    flow_step: str | None = None  # the flow method it was kicked off in, if any
    tool_calls: list[ToolInvocation] = field(default_factory=list)  # every tool call, in order
    delegations: list[Delegation] = field(default_factory=list)  # (from_agent, to_agent, task)

    @property
    def task_outputs(self) -> list[Any]:
        """The ``TaskOutput`` of each task (empty when the kickoff failed)."""
        return list(getattr(self.output, "tasks_output", None) or [])

    @property
    def cost(self) -> float:
        """Estimated USD cost of the calls whose cost is known. It is the whole cost only when
        :attr:`cost_exact` is true; otherwise :attr:`unpriced_models` and
        :attr:`usage_unknown_calls` say what it leaves out."""
        return total_cost(self.calls)

    @property
    def cost_exact(self) -> bool:
        """Whether :attr:`cost` covers every call (all priced, all with usage)."""
        return cost_exact(self.calls)

    @property
    def unpriced_models(self) -> list[str]:
        """Models of this run that have no price: their calls are not in :attr:`cost`."""
        return unpriced_models(self.calls)

    @property
    def usage_unknown_calls(self) -> list[LLMCall]:
        """Calls whose response had no usage block: not in :attr:`cost` nor the token totals."""
        return usage_unknown_calls(self.calls)

    @property
    def tokens(self) -> int:
        """Input plus output tokens of the calls whose usage is known."""
        return total_tokens(self.calls)

    @property
    def input_tokens(self) -> int:
        return total_tokens(self.calls, "input_tokens")

    @property
    def output_tokens(self) -> int:
        return total_tokens(self.calls, "output_tokens")

    @property
    def llm_calls(self) -> int:
        return len(self.calls)

    @property
    def iterations(self) -> dict[AgentTask, int]:
        """Reasoning/tool rounds per ``(agent_role, task_name)``."""
        return dict(Counter((c.agent, c.task) for c in self.calls if c.agent_round))

    @property
    def max_iter_hits(self) -> list[AgentTask]:
        """The ``(agent_role, task_name)`` pairs where CrewAI forced a final answer."""
        hits: list[AgentTask] = []
        for call in self.calls:
            pair = (call.agent, call.task)
            if call.forced_final_answer and pair not in hits:
                hits.append(pair)
        return hits

    def last_tool_calls(self, agent: str | None, task: str | None, n: int = 3) -> list[str]:
        """The last ``n`` tool calls an agent made on a task, as ``tool(args)``."""
        mine = [
            e
            for e in self.tool_events
            if e.type == "tool_usage_started" and e.agent_role == agent and e.task_name == task
        ]
        return [f"{e.tool_name}({e.tool_args or ''})" for e in mine[-n:]]

    def assert_tools(
        self,
        expected: list[Expected],
        mode: str = "exact",
        agent: str | None = None,
        task: str | None = None,
    ) -> None:
        """Assert the run's tool calls (optionally one agent's, or one task's) against
        ``expected``: tool names or ``(name, args_pattern)``. ``mode="exact"``: these calls, in
        this order, nothing else; ``"subsequence"``: these in this order, others allowed;
        ``"set"``: these tools and no others, in any order and number. The failure shows a diff."""
        __tracebackhide__ = True
        assert_tools(self.tool_calls, expected, mode, agent, task)

    def assert_output(self, schema: Any, task: str | None = None) -> None:
        """Validate the final output, or task ``task``'s, against a pydantic model, a JSON
        Schema dict or a ``.json`` schema file; the failure lists every failing field path."""
        from .output_schema import check_output

        __tracebackhide__ = True  # the failure is the caller's assertion, not crewguard's code
        problem = check_output(self, schema, task=task, rootdir=self.rootdir)
        if problem:
            raise AssertionError(problem)
