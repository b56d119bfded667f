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
from .money import sum_usd
from .pricing import PriceTable
from .scrubbing import scrub_uri
from .usage import Usage
from .wire import HttpExchange


@dataclass(frozen=True)
class LLMCall:
    """One provider LLM request and what it cost.

    Token counts and ``cost`` are ``None`` when the response carried no usage block
    (``usage_known`` is ``False``: a stream recorded without usage, a provider that omits it):
    such a call is never counted as 0 tokens. ``cost`` is also ``None`` when the model has no
    price (``priced`` is ``False``). ``free`` says the price data lists the model at $0.
    ``input_tokens`` include ``cached_tokens`` (cache reads) and ``cache_write_tokens``;
    ``output_tokens`` include ``reasoning_tokens``. ``faults`` are the fault answers (``"429"``,
    ``"timeout"``, ...) the request met before this answer, each followed by a retry (the
    SDK's, or the application's); ``waited_s`` the seconds of backoff and ``max_rpm`` waits
    before it (virtual in replay).
    ``model`` is the model that answered, so an application's fallback to another model shows
    in ``run.calls[i].model`` and is priced at that model.
    """

    provider: str | None
    model: str | None
    agent: str | None
    task: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    reasoning_tokens: int | None
    cost: float | None
    recorded_latency_s: float | None
    forced_final_answer: bool
    url: str
    status: int
    agent_round: bool
    kickoff_id: str | None
    cache_write_tokens: int | None = 0
    usage_known: bool = True
    priced: bool = True
    free: bool = False
    faults: tuple[str, ...] = ()
    waited_s: float = 0.0

    @property
    def retries(self) -> int:
        """How often the SDK sent this request again after a fault answer, before this answer."""
        return len(self.faults)

    @property
    def rate_limited(self) -> bool:
        """Whether the provider answered this request with a 429 before answering it."""
        return "429" in self.faults
    crew: str | None = None  # the crew's name (``Crew.name``; a @CrewBase class's name)
    flow_step: str | None = None  # the flow method the call ran in

    @property
    def where(self) -> str:
        """``crew 'research' / step 'research' / agent 'Researcher' / task 'research'``: the
        parts known, for messages."""
        parts = [
            f"{label} {value!r}"
            for label, value in (
                ("crew", self.crew),
                ("step", self.flow_step),
                ("agent", self.agent),
                ("task", self.task),
            )
            if value
        ]
        return " / ".join(parts) or "outside any crew or flow"

    @property
    def tokens(self) -> int | None:
        """Input plus output tokens (``None`` when the usage is unknown)."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    def describe(self) -> str:
        """``model agent / task in=.. out=..`` with each kind of token, for messages."""
        return f"{self.model} {self.agent or '-'} / {self.task or '-'} {token_text(self)}"


def token_text(call: LLMCall) -> str:
    """``in=1220 (cache read 1217) out=6``, or ``usage unknown``."""
    if not call.usage_known or call.input_tokens is None or call.output_tokens is None:
        return "usage unknown (the response had no readable usage block)"
    extra_in = [
        f"cache read {call.cached_tokens}" if call.cached_tokens else "",
        f"cache write {call.cache_write_tokens}" if call.cache_write_tokens else "",
    ]
    extra_out = f" (reasoning {call.reasoning_tokens})" if call.reasoning_tokens else ""
    detail = ", ".join(x for x in extra_in if x)
    return f"in={call.input_tokens}{f' ({detail})' if detail else ''} out={call.output_tokens}{extra_out}"


def total_cost(calls: Iterable[LLMCall]) -> float:
    """USD cost of the calls whose cost is known: exact only when :func:`cost_exact` says so
    (unpriced models and calls without usage are listed apart, never counted as $0)."""
    return sum_usd(c.cost for c in calls if c.cost is not None)


def cost_exact(calls: Iterable[LLMCall]) -> bool:
    """Whether every call's cost is known (usage reported and the model priced)."""
    return all(c.cost is not None for c in calls)


def total_tokens(calls: Iterable[LLMCall], kind: str = "tokens") -> int:
    """Sum of ``kind`` (``tokens``, ``input_tokens``, ...) over calls whose usage is known."""
    return sum(getattr(c, kind) or 0 for c in calls if c.usage_known)


def unpriced_models(calls: Iterable[LLMCall]) -> list[str]:
    """Models among ``calls`` that have no price: never counted as $0."""
    return sorted({c.model or "(unknown model)" for c in calls if not c.priced})


def usage_unknown_calls(calls: Iterable[LLMCall]) -> list[LLMCall]:
    """Calls whose response carried no usage block: never counted as 0 tokens."""
    return [c for c in calls if not c.usage_known]


def free_models(calls: Iterable[LLMCall]) -> list[str]:
    """Models among ``calls`` that the price data lists at $0."""
    return sorted({c.model or "(unknown model)" for c in calls if c.free})


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
    wire_calls: Iterable[HttpExchange], events: EventLog, prices: PriceTable, force_texts: list[str]
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
        # An error response without usage is a request the provider rejected and does not
        # bill: known to be nothing. A successful one without usage is unknown, not zero.
        rejected = usage is None and wire.status >= 400
        if rejected:
            usage = Usage(input_tokens=0, output_tokens=0)
        quote = prices.quote(exchange.provider, exchange.model)
        agent = (agent_event.agent_role if agent_event else None) or (
            llm_event.agent_role if llm_event else None
        )
        task = (task_event.task_name if task_event else None) or (llm_event.task_name if llm_event else None)
        kickoff = events.get(wire.scope_id("crew_kickoff_started"))
        lite = events.get(wire.scope_id("lite_agent_execution_started"))
        step = events.get(wire.scope_id("method_execution_started"))
        if agent is None and lite is not None:
            agent = lite.agent_role
        calls.append(
            LLMCall(
                provider=exchange.provider,
                model=exchange.model,
                agent=agent,
                task=task,
                input_tokens=usage.input_tokens if usage else None,
                output_tokens=usage.output_tokens if usage else None,
                cached_tokens=usage.cached_tokens if usage else None,
                reasoning_tokens=usage.reasoning_tokens if usage else None,
                cost=0.0 if rejected else quote.cost(usage) if usage and quote else None,
                recorded_latency_s=wire.recorded_latency_s,
                forced_final_answer=forced,
                url=scrub_uri(wire.uri),  # reports are shared like cassettes: no key in a URL
                status=wire.status,
                # An agent's own reasoning round: CrewAI attaches the agent to the LLM call.
                # The forced final answer and converter calls carry no agent; an error answer
                # (a recorded 429 the SDK then retried) is no round: the retry is.
                agent_round=bool(llm_event and llm_event.agent_role) and not forced and wire.status < 400,
                # A crew's kickoff, else the Agent.kickoff() it ran in: each is a run.
                kickoff_id=(
                    wire.scope_id("crew_kickoff_started") or wire.scope_id("lite_agent_execution_started")
                ),
                cache_write_tokens=usage.cache_write_tokens if usage else None,
                usage_known=usage is not None,
                priced=quote is not None or rejected,  # a rejected request has nothing to price
                free=quote is not None and quote.free,
                faults=wire.faults,
                waited_s=wire.waited_s,
                crew=kickoff.crew_name if kickoff else None,
                flow_step=step.method_name if step else None,
            )
        )
    return calls
