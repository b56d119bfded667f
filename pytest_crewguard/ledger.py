"""The ledger: one :class:`LLMCall` per provider LLM request, priced and attributed.

Usage comes from what crossed the wire (the provider's own usage block, recorded or
replayed), never from ``crew.usage_metrics``, which adds up across kickoffs and counts a shared
LLM once per agent. Agent and task come from the CrewAI event scope the request was sent in.
Token-count preflights, embeddings and other traffic stay in the cassette but are not calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .events import EventLog
from .pricing import PriceTable
from .wire import WireCall


@dataclass(frozen=True)
class LLMCall:
    """One provider LLM request and what it cost."""

    provider: str | None
    model: str | None
    agent: str | None
    task: str | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    cost: float | None
    recorded_latency_s: float | None
    forced_final_answer: bool
    url: str
    status: int
    agent_round: bool
    kickoff_id: str | None

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def total_cost(calls: Iterable[LLMCall]) -> float:
    """USD cost of the priced calls (unpriced ones are listed by :func:`unpriced_models`)."""
    return round(sum(c.cost for c in calls if c.cost is not None), 10)


def unpriced_models(calls: Iterable[LLMCall]) -> list[str]:
    """Models among ``calls`` that have no price: never counted as $0."""
    return sorted({c.model or "(unknown model)" for c in calls if c.cost is None})


_seen_force_texts: set[str] = set()


def forced_final_answer_texts(prompt_files: Iterable[str] = ()) -> list[str]:
    """CrewAI's forced-final-answer prompt, as its i18n layer gives it.

    CrewAI 1.15 builds that prompt in ``crewai.utilities.agent_utils`` from the process-wide
    ``I18N_DEFAULT`` it imported (a crew's ``prompt_file`` only reaches the hierarchical
    manager's prompts), so the text is read from that very object: whatever translation it
    holds is what goes on the wire. Custom prompt files are read too, in case a CrewAI version
    starts honouring them.
    """
    from crewai.utilities import agent_utils, i18n

    default = getattr(agent_utils, "I18N_DEFAULT", None) or i18n.I18N_DEFAULT
    texts = {default.errors("force_final_answer")}
    # Every text seen stays known: a test may swap the translation for its own duration, and
    # its calls are looked at again after that (end-of-test gates, the report).
    texts |= _seen_force_texts
    for prompt_file in prompt_files:
        try:
            texts.add(i18n.I18N(prompt_file=prompt_file).errors("force_final_answer"))
        except Exception:  # a prompt file without that entry falls back to the default text
            continue
    found = {t.strip() for t in texts if t and t.strip()}
    _seen_force_texts.update(found)
    return sorted(found)


def _last_user_text(request_body: Any) -> str:
    if isinstance(request_body, bytes):
        request_body = request_body.decode("utf-8", errors="replace")
    try:
        body = json.loads(request_body or "{}")
    except (TypeError, ValueError):
        return ""
    messages = body.get("messages") or body.get("input") or body.get("contents") or []
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content", message.get("parts"))
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        return ""
    return ""


def is_forced_final_answer(request_body: Any, force_texts: Iterable[str]) -> bool:
    """Whether the request's last user message is CrewAI's forced-final-answer prompt."""
    text = _last_user_text(request_body)
    return bool(text) and any(force in text for force in force_texts)


def build_calls(
    wire_calls: Iterable[WireCall], events: EventLog, prices: PriceTable, force_texts: list[str]
) -> list[LLMCall]:
    """Turn the LLM exchanges of ``wire_calls`` into priced, attributed :class:`LLMCall` s."""
    calls: list[LLMCall] = []
    for wire in wire_calls:
        exchange = wire.exchange
        if exchange.kind != "llm":
            continue
        task_event = events.get(wire.scope_id("task_started"))
        agent_event = events.get(wire.scope_id("agent_execution_started"))
        llm_event = events.get(wire.scope_id("llm_call_started"))
        forced = is_forced_final_answer(wire.request_body, force_texts)
        usage = exchange.usage
        agent = (agent_event.agent_role if agent_event else None) or (
            llm_event.agent_role if llm_event else None
        )
        task = (task_event.task_name if task_event else None) or (llm_event.task_name if llm_event else None)
        calls.append(
            LLMCall(
                provider=exchange.provider,
                model=exchange.model,
                agent=agent,
                task=task,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
                cached_tokens=usage.cached_tokens if usage else 0,
                reasoning_tokens=usage.reasoning_tokens if usage else 0,
                cost=prices.cost(exchange.provider, exchange.model, usage) if usage else 0.0,
                recorded_latency_s=wire.recorded_latency_s,
                forced_final_answer=forced,
                url=wire.uri,
                status=wire.status,
                # An agent's own reasoning round: CrewAI attaches the agent to the LLM call.
                # The forced final answer and converter calls carry no agent.
                agent_round=bool(llm_event and llm_event.agent_role) and not forced,
                kickoff_id=wire.scope_id("crew_kickoff_started"),
            )
        )
    return calls
