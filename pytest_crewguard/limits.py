"""The gates: which limits a run or a whole test crossed, each as one readable message."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from .ledger import (
    LLMCall,
    cost_exact,
    token_text,
    total_cost,
    total_tokens,
    unpriced_models,
    usage_unknown_calls,
)
from .marker import GuardSpec
from .money import usd
from .run import GuardedRun
from .tool_calls import ToolInvocation, tool_key
from .verdict import Gate, Violation


def _who(agent: str | None, task: str | None) -> str:
    if task is None:  # an Agent.kickoff(): the agent alone, no task
        return f"agent {agent!r} in Agent.kickoff()"
    return f"agent {agent!r} on task {task!r}"


def run_violations(spec: GuardSpec, run: GuardedRun) -> list[Violation]:
    """A :class:`Violation` for each per-run limit ``run`` crossed."""
    from .rate_limits import fault_violations, rpm_violations

    found: list[Violation] = fault_violations(run) + rpm_violations(spec.max_rpm, run)
    if not spec.allow_max_iter:
        for agent, task in run.max_iter_hits:
            # CrewAI (1.15) adds one iteration per agent LLM call and forces the final answer
            # once iterations >= max_iter, so the rounds before a forced answer are max_iter.
            rounds = run.iterations.get((agent, task), 0)
            tools = run.last_tool_calls(agent, task)
            lines = [
                f"agent {agent!r} reached max_iter={rounds} "
                + (f"on task {task!r}" if task is not None else "in Agent.kickoff()")
                + " and CrewAI forced a final answer",
                "  last tool calls:",
            ]
            lines += [f"    {tool}" for tool in tools] or ["    (none)"]
            lines.append(
                "  The task's output is whatever the model said when told to stop. Fix the loop "
                "(tool results the agent cannot use, a vague task), raise the agent's max_iter, "
                "or pass allow_max_iter=True to accept forced answers."
            )
            found.append(Violation(Gate.MAX_ITER, "\n".join(lines)))
    if spec.max_iterations is not None:
        for (agent, task), rounds in sorted(run.iterations.items(), key=lambda kv: -kv[1]):
            if rounds > spec.max_iterations:
                found.append(
                    Violation(
                        Gate.MAX_ITERATIONS,
                        f"{_who(agent, task)} used {rounds} rounds, over "
                        f"max_iterations={spec.max_iterations}",
                        {"agent": agent, "task": task, "rounds": rounds},
                    )
                )
    if spec.output is not None:
        from .output_gates import output_violations

        found += output_violations(spec.output, run)
    if spec.max_seconds is not None and run.projected_s is not None and run.projected_s > spec.max_seconds:
        recorded = run.projected_s - run.elapsed_s
        found.append(
            Violation(
                Gate.MAX_SECONDS,
                f"projected time {run.projected_s:.2f} s is over max_seconds={spec.max_seconds:g} "
                f"({recorded - run.waited_s:.2f} s of recorded provider latency over {run.llm_calls} calls"
                + (f" + {run.waited_s:.2f} s of retry and rate-limit waits" if run.waited_s else "")
                + f" + {run.elapsed_s:.2f} s local); against the live provider this run would "
                "take that long",
            )
        )
    floor = run.projected_floor_s
    if spec.max_seconds is not None and floor is not None and floor > spec.max_seconds:
        unknown = sum(1 for c in run.calls if c.recorded_latency_s is None)
        found.append(
            Violation(
                Gate.MAX_SECONDS,
                f"projected time is at least {floor:.2f} s, over max_seconds={spec.max_seconds:g}: "
                f"the recorded provider latencies of {run.llm_calls - unknown} of {run.llm_calls} calls "
                f"and {run.elapsed_s:.2f} s local already add up to that ({unknown} call(s) have no "
                "recorded latency); against the live provider this run would take at least that long",
            )
        )
    return found


def _top_calls(calls: Sequence[LLMCall], n: int = 3) -> str:
    ranked = sorted(calls, key=lambda c: -(c.cost or 0.0))[:n]
    return "\n".join(
        f"    {cost_text(c.cost, exact=True) if c.cost is not None else 'unknown  '}  {c.model}  "
        f"{c.agent or '-'} / {c.task or '-'}  {token_text(c)}"
        for c in ranked
    )


def cost_text(cost: float, *, exact: bool, free: bool = False) -> str:
    """``$0.000540``; ``≥$0.000540`` when some calls' cost is unknown; ``free`` for $0 models."""
    if free and exact and cost == 0:
        return "free"
    return usd(cost) if exact else f"≥{usd(cost)}"


def unpriced_message(models: Sequence[str], gate: str) -> str:
    return (
        f"{gate} is set but these models have no price: {', '.join(models)}. A call is never "
        "counted as $0. Add their prices (USD per million tokens) to a file and pass it with "
        "--crewguard-prices (ini crewguard_prices), e.g.\n"
        f"    {models[0]}:\n      input: 0.15\n      cached_input: 0.075\n      output: 0.60\n"
        "  (for an Azure deployment name, map it to the model it serves under `aliases:` in that "
        "file instead)"
    )


def usage_unknown_message(calls: Sequence[LLMCall], gate: str) -> str:
    """The gate cannot be checked: these calls' responses carried no usage block."""
    one = len(calls) == 1
    lines = [
        f"{gate} is set but {len(calls)} LLM call{'' if one else 's'} had no readable usage in the response, "
        f"so {'its' if one else 'their'} tokens and cost are unknown (never counted as 0):"
    ]
    lines += [
        f"    {i + 1}. {c.model} {c.agent or '-'} / {c.task or '-'}  {c.url}" for i, c in enumerate(calls[:5])
    ]
    if len(calls) > 5:
        lines.append(f"    ... and {len(calls) - 5} more")
    lines.append(
        "  A stream carries usage only in its last chunk, and only when the request asks for it "
        '(CrewAI 1.15\'s own LLM classes do; with another client send `stream_options={"include_usage": '
        'true}` or turn streaming off); a stream cut off before that chunk, or token counts that are '
        "not whole numbers, leave it unknown too. Record these calls again once usage comes back."
    )
    return "\n".join(lines)


def total_violations(spec: GuardSpec, calls: Sequence[LLMCall]) -> list[Violation]:
    """A :class:`Violation` for each limit the test's calls, all runs together, crossed.

    A cost or token gate over calls whose numbers are unknown (no usage, no price) fails
    rather than passing on a partial sum; a known part already over the limit fails too.
    """
    found: list[Violation] = []
    unknown = usage_unknown_calls(calls)
    gates = [g for g, v in (("max_cost", spec.max_cost), ("max_tokens", spec.max_tokens)) if v is not None]
    if unknown and gates:
        named = " and ".join(
            f"max_cost={usd(spec.max_cost)}"
            if g == "max_cost" and spec.max_cost is not None
            else f"{g}={spec.max_tokens}"
            for g in gates
        )
        message = usage_unknown_message(unknown, named)
        found.append(Violation(Gate.USAGE_UNKNOWN, message, {"calls": len(unknown)}))
    if spec.max_cost is not None:
        unpriced = unpriced_models(calls)
        cost = total_cost(calls)
        if unpriced:
            message = unpriced_message(unpriced, f"max_cost={usd(spec.max_cost)}")
            found.append(Violation(Gate.UNPRICED, message, {"models": unpriced}))
        if cost > spec.max_cost:
            found.append(
                Violation(
                    Gate.MAX_COST,
                    f"cost {cost_text(cost, exact=cost_exact(calls))} is over "
                    f"max_cost={usd(spec.max_cost)} by {'' if cost_exact(calls) else 'at least '}"
                    f"{usd(cost - spec.max_cost)} ({len(calls)} LLM calls); top calls:\n" + _top_calls(calls),
                    {"cost": cost, "limit": spec.max_cost},
                )
            )
    tokens = total_tokens(calls)
    if spec.max_tokens is not None and tokens > spec.max_tokens:
        at_least = "at least " if unknown else ""
        found.append(
            Violation(
                Gate.MAX_TOKENS,
                f"{at_least}{tokens} tokens are over max_tokens={spec.max_tokens}; top calls:\n"
                + _top_calls(calls),
                {"tokens": tokens, "limit": spec.max_tokens},
            )
        )
    if spec.max_llm_calls is not None and len(calls) > spec.max_llm_calls:
        found.append(
            Violation(
                Gate.MAX_LLM_CALLS,
                f"{len(calls)} LLM calls are over max_llm_calls={spec.max_llm_calls}",
                {"calls": len(calls), "limit": spec.max_llm_calls},
            )
        )
    return found


def _numbered(calls: Sequence[ToolInvocation], n: int = 5) -> list[str]:
    lines = [f"    {i + 1}. {c.describe()}" for i, c in enumerate(calls[:n])]
    if len(calls) > n:
        lines.append(f"    ... and {len(calls) - n} more")
    return lines


def tool_violations(spec: GuardSpec, runs: Sequence[GuardedRun]) -> list[Violation]:
    """The tool gates over every run of the test (application kickoffs included)."""
    calls = [c for r in runs for c in r.tool_calls]
    found: list[Violation] = []
    for name in spec.forbidden_tools:
        hits = [c for c in calls if tool_key(c.tool) == tool_key(name)]
        if hits:
            lines = [f"forbidden tool {name!r} was called {len(hits)} time{'s' if len(hits) > 1 else ''}:"]
            lines += _numbered(hits)
            lines.append(
                "  Take the tool away from the agent (or the instruction that leads to it), or drop it "
                "from forbidden_tools."
            )
            found.append(Violation(Gate.FORBIDDEN_TOOL, "\n".join(lines), {"tool": name, "calls": len(hits)}))
    limit = spec.max_tool_calls
    counts = Counter(c.tool for c in calls)
    if isinstance(limit, int) and len(calls) > limit:
        per_tool = ", ".join(f"{tool} {n}" for tool, n in counts.most_common())
        found.append(
            Violation(
                Gate.MAX_TOOL_CALLS,
                f"{len(calls)} tool calls are over max_tool_calls={limit} ({per_tool})",
                {"calls": len(calls), "limit": limit},
            )
        )
    elif isinstance(limit, dict):
        for name, most in limit.items():
            made = [c for c in calls if tool_key(c.tool) == tool_key(name)]
            if len(made) > most:
                found.append(
                    Violation(
                        Gate.MAX_TOOL_CALLS,
                        f"tool {name!r} was called {len(made)} times, over max_tool_calls[{name!r}]={most}; "
                        f"the last calls:\n" + "\n".join(_numbered(made[-3:])),
                        {"tool": name, "calls": len(made), "limit": most},
                    )
                )
    failed = [c for c in calls if c.error is not None]
    if failed and not spec.allow_tool_errors:
        lines = [
            f"{len(failed)} tool call{'s' if len(failed) > 1 else ''} raised; CrewAI fed the error back "
            "to the model and the crew went on, so its output may rest on a tool that failed:"
        ]
        for i, call in enumerate(failed[:5]):
            lines += [f"    {i + 1}. {call.tool} raised {call.error}", f"       {call.describe()}"]
        if len(failed) > 5:
            lines.append(f"    ... and {len(failed) - 5} more")
        lines.append(
            "  Fix the tool (or its inputs), or pass allow_tool_errors=True when failing tools are expected."
        )
        found.append(Violation(Gate.TOOL_ERROR, "\n".join(lines), {"errors": len(failed)}))
    return found
