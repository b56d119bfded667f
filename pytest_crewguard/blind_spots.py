"""What crewguard could not see or answer during a test; each is a failure, never a silent pass.

Cassette misses, traffic another layer answered, LLM calls whose CrewAI events never arrived,
and error answers refused while recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import events as crew_events
from . import interception
from .events import EventLog
from .usage.decoding import as_text, decompress, header_value, parse_json
from .verdict import Gate, Violation
from .wire import HttpExchange, WireLog


def blind_spots(
    wire: WireLog | None, events: EventLog, patches: interception.Snapshot, nodeid: str
) -> list[Violation]:
    """The test's blind spots so far, the first one being the likely cause of the others."""
    found: list[Violation] = []
    if wire is None:
        return found
    if wire.misses:
        found.append(Violation(Gate.CASSETTE_MISS, wire.misses[0]))
    other = interception.taken_over(patches) if patches else None
    if other is not None:
        found.append(Violation(Gate.TRAFFIC_NOT_SEEN, _taken_over_message(other, nodeid)))
    else:
        completed, answered = _calls_answered(wire, events)
        if completed > answered:
            message = _answered_above_message(completed, answered, nodeid)
            found.append(Violation(Gate.TRAFFIC_NOT_SEEN, message))
        elif not completed and not answered and (agents := _agents_answered(events)):
            found.append(Violation(Gate.TRAFFIC_NOT_SEEN, _no_llm_calls_message(agents, nodeid)))
    lost, earlier = calls_without_events(wire.calls, events)
    if earlier:
        found.append(Violation(Gate.EVENTS_MISSING, _earlier_kickoff_message(earlier), {"calls": earlier}))
    if lost:
        found.append(Violation(Gate.EVENTS_MISSING, _events_missing_message(lost), {"calls": lost}))
    for problem in wire.error_answers():
        found.append(Violation(Gate.PROVIDER_ERROR, problem))
    return found


def _calls_answered(wire: WireLog, events: EventLog) -> tuple[int, int]:
    """LLM calls CrewAI says completed, and the cassette's answers that may have been theirs.

    More calls than answers means something answered above the HTTP transport, where the
    interception check does not look (a patched ``httpx.Client.send``, a mocked SDK client).
    An answer counts when it came from a model endpoint, or from an endpoint crewguard does not
    know that answered like a model (a gateway of its own); embeddings, token counts and a
    tool's own requests do not, else they would make up for the LLM calls crewguard never saw.
    """
    answered = sum(1 for call in list(wire.calls) if call.status < 400 and _may_answer_llm_call(call))
    return events.count("llm_call_completed"), answered


_MODEL_ANSWER_KEYS = ("choices", "candidates", "usage", "usageMetadata", "stop_reason", "done_reason")


def _may_answer_llm_call(call: HttpExchange) -> bool:
    kind = call.exchange.kind
    if kind != "other":
        return kind == "llm"
    text = as_text(decompress(call.response_body, header_value(call.response_headers, "content-encoding")))
    if text is None:
        return False
    if "event-stream" in header_value(call.response_headers, "content-type").lower():
        return any(key in text for key in _MODEL_ANSWER_KEYS)  # a stream of a model's chunks
    data = parse_json(text)
    return isinstance(data, dict) and any(key in data for key in _MODEL_ANSWER_KEYS)


def _answered_above_message(completed: int, answered: int, nodeid: str) -> str:
    return (
        f"crewguard: CrewAI reported {completed} LLM call(s) completed in {nodeid}, but crewguard's "
        f"cassette answered {answered} HTTP request(s): the rest were answered above the HTTP "
        "transport (a patched httpx.Client.send, a mocked SDK client, an LLM class that emits "
        "CrewAI's events without a request), so crewguard could not count, price or gate them.\n"
        "  Let the provider SDK send its requests and crewguard answer them from the cassette; "
        "a test that mocks the LLM itself is not one to guard with crewguard."
    )


def _agents_answered(events: EventLog) -> int:
    """Agents CrewAI says finished their work: each asked its LLM at least once."""
    return events.count("agent_execution_completed") + events.count("lite_agent_execution_completed")


def _no_llm_calls_message(agents: int, nodeid: str) -> str:
    return (
        f"crewguard: {agents} agent execution(s) completed in {nodeid}, but crewguard saw no LLM "
        "call: no LLM event and no model's answer from the cassette. The agents' LLM answered by "
        "a way crewguard cannot see (a custom BaseLLM that sends no HTTP request through httpx or "
        "emits no LLM events, a stub), so it could not count, price or gate those calls.\n"
        "  Give the agents crewai's LLM (or an SDK over HTTP) so that crewguard answers them from "
        "the cassette; a test of a crew with a stub LLM is not one to guard with crewguard."
    )


def _taken_over_message(other: str, nodeid: str) -> str:
    return (
        f"crewguard: the HTTP traffic of {nodeid} was answered by {other}, not by crewguard's "
        "cassette, so crewguard saw none of its LLM calls and could not count, price or gate them.\n"
        "  crewguard must be the innermost recorder: remove the other cassette from this test "
        "(@pytest.mark.vcr, vcr.use_cassette), or open it before the crewguard fixture starts."
    )


def _earlier_kickoff_message(calls: int) -> str:
    return (
        f"crewguard: {calls} LLM call(s) sent while this test ran came from a CrewAI kickoff that "
        "started before it, in an earlier test or a fixture, and was still running: they are "
        "not this test's, and crewguard cannot tell which agent and task made them.\n"
        "  Wait for that kickoff where it starts (join its thread, await its task) so that it "
        "ends with its own test; a guarded test does so at its end."
    )


def _events_missing_message(calls: int) -> str:
    return (
        f"crewguard: {calls} LLM call(s) of this test were made inside a CrewAI kickoff whose events "
        "never reached crewguard, so it cannot tell which agent and task made them, nor check "
        "max_iterations or max_iter.\n"
        "  Something removed crewguard's handlers from crewai_event_bus during the test (for example "
        "a fixture that clears the bus's handlers, or a kickoff inside crewai_event_bus.scoped_handlers()). "
        "Clear the bus before the test starts, not while it runs."
    )


# Scopes an LLM exchange inside a kickoff runs in, whose start events crewguard must have seen.
_SCOPES_SEEN = ("crew_kickoff_started", "agent_execution_started", "llm_call_started")


def calls_without_events(calls: Iterable[Any], log: EventLog) -> tuple[int, int]:
    """LLM exchanges that ran inside a CrewAI kickoff, agent execution or LLM call whose start
    event this test's log never got: ``(lost, earlier)``.

    Those scopes are on the thread that sent the request whether or not any handler ran. A
    kickoff an earlier test's log saw start (``earlier``) outlived that test or its fixture;
    otherwise (``lost``) crewguard's handlers were removed while this test ran (also midway
    through a kickoff, which would leave later rounds unattributed and uncounted).
    """
    calls = list(calls)
    lost, earlier = _without_events(calls, log)
    if lost:
        # A kickoff running beside the one that just ended may have a request on the wire
        # whose start event is still queued for its handler: CrewAI queues it before the
        # request is sent, so waiting for the handlers queued by now settles it.
        crew_events.flush()
        lost, earlier = _without_events(calls, log)
    return lost, earlier


def _without_events(calls: list[Any], log: EventLog) -> tuple[int, int]:
    lost = earlier = 0
    for call in calls:
        kickoff = call.scope_id("crew_kickoff_started") if call.exchange.kind == "llm" else None
        if kickoff is None:
            continue
        if log.get(kickoff) is None and crew_events.seen_start(kickoff):
            earlier += 1
            continue
        scopes = [call.scope_id(kind) for kind in _SCOPES_SEEN]
        if any(scope is not None and log.get(scope) is None for scope in scopes):
            lost += 1
    return lost, earlier
