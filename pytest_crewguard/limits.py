"""The gates: which limits a run or a whole test crossed, each as one readable message."""

from __future__ import annotations

from collections.abc import Sequence

from .ledger import LLMCall, total_cost, unpriced_models
from .marker import GuardSpec
from .run import GuardedRun


def usd(amount: float) -> str:
    """Dollars with enough digits to tell sub-cent calls apart: ``$0.000540``."""
    return f"${amount:.6f}"


def _who(agent: str | None, task: str | None) -> str:
    return f"agent {agent!r} on task {task!r}"


def run_violations(spec: GuardSpec, run: GuardedRun) -> list[tuple[str, str]]:
    """``(gate, message)`` for each per-run limit ``run`` crossed."""
    found: list[tuple[str, str]] = []
    if not spec.allow_max_iter:
        for agent, task in run.max_iter_hits:
            # CrewAI (1.15) adds one iteration per agent LLM call and forces the final answer
            # once iterations >= max_iter, so the rounds before a forced answer are max_iter.
            rounds = run.iterations.get((agent, task), 0)
            tools = run.last_tool_calls(agent, task)
            lines = [
                f"agent {agent!r} reached max_iter={rounds} on task {task!r} and CrewAI forced "
                "a final answer",
                "  last tool calls:",
            ]
            lines += [f"    {tool}" for tool in tools] or ["    (none)"]
            lines.append(
                "  The task's output is whatever the model said when told to stop. Fix the loop "
                "(tool results the agent cannot use, a vague task), raise the agent's max_iter, "
                "or pass allow_max_iter=True to accept forced answers."
            )
            found.append(("max_iter", "\n".join(lines)))
    if spec.max_iterations is not None:
        for (agent, task), rounds in sorted(run.iterations.items(), key=lambda kv: -kv[1]):
            if rounds > spec.max_iterations:
                found.append(
                    (
                        "max_iterations",
                        f"{_who(agent, task)} used {rounds} rounds, over "
                        f"max_iterations={spec.max_iterations}",
                    )
                )
    if spec.output is not None:
        from .output_schema import check_output

        problem = check_output(run, spec.output, rootdir=run.rootdir)
        if problem:
            found.append(("output", problem))
    if spec.max_seconds is not None and run.projected_s is not None and run.projected_s > spec.max_seconds:
        recorded = run.projected_s - run.elapsed_s
        found.append(
            (
                "max_seconds",
                f"projected time {run.projected_s:.2f} s is over max_seconds={spec.max_seconds:g} "
                f"({recorded:.2f} s of recorded provider latency over {run.llm_calls} calls "
                f"+ {run.elapsed_s:.2f} s local); against the live provider this run would "
                "take that long",
            )
        )
    return found


def _top_calls(calls: Sequence[LLMCall], n: int = 3) -> str:
    ranked = sorted(calls, key=lambda c: -(c.cost or 0.0))[:n]
    return "\n".join(
        f"    {usd(c.cost or 0.0)}  {c.model}  {c.agent or '-'} / {c.task or '-'}  "
        f"in={c.input_tokens} out={c.output_tokens}"
        for c in ranked
    )


def unpriced_message(models: Sequence[str], gate: str) -> str:
    return (
        f"{gate} is set but these models have no price: {', '.join(models)}. A call is never "
        "counted as $0. Add their prices (USD per million tokens) to a file and pass it with "
        "--crewguard-prices (ini crewguard_prices), e.g.\n"
        f"    {models[0]}:\n      input: 0.15\n      cached_input: 0.075\n      output: 0.60"
    )


def total_violations(spec: GuardSpec, calls: Sequence[LLMCall]) -> list[tuple[str, str]]:
    """``(gate, message)`` for each limit the test's calls, all runs together, crossed."""
    found: list[tuple[str, str]] = []
    if spec.max_cost is not None:
        unpriced = unpriced_models(calls)
        cost = total_cost(calls)
        if unpriced:
            found.append(("unpriced", unpriced_message(unpriced, f"max_cost={usd(spec.max_cost)}")))
        elif cost > spec.max_cost:
            found.append(
                (
                    "max_cost",
                    f"cost {usd(cost)} is over max_cost={usd(spec.max_cost)} by "
                    f"{usd(cost - spec.max_cost)} ({len(calls)} LLM calls); top calls:\n" + _top_calls(calls),
                )
            )
    tokens = sum(c.tokens for c in calls)
    if spec.max_tokens is not None and tokens > spec.max_tokens:
        found.append(
            (
                "max_tokens",
                f"{tokens} tokens are over max_tokens={spec.max_tokens}; top calls:\n" + _top_calls(calls),
            )
        )
    if spec.max_llm_calls is not None and len(calls) > spec.max_llm_calls:
        found.append(("max_llm_calls", f"{len(calls)} LLM calls are over max_llm_calls={spec.max_llm_calls}"))
    return found
