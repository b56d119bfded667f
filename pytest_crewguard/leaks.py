"""Comparing the runs of a repeated test: requests that changed, and text that leaked.

Every run of ``repeat=N`` builds its crew from the same factory with the same inputs, so it
should send the provider the same requests as run 1. Each later run's requests are paired with
run 1's (by where in the crew they were sent, then by order) and compared text by text:

- text a later run sent that run 1 did not, and that an earlier run produced (an answer of
  the provider, a tool result), is a leak: state outlived its run and was fed back;
- any other difference fails too, with a diff, as long as the provider had answered this run
  exactly as it answered run 1 (replayed and scripted runs always do). Once a live provider
  answers differently, later requests may differ for that reason alone, so from there on only
  earlier runs' answers are looked for.

Tool call ids, UUIDs and timestamps differ between any two runs and are left out.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from .events import EventLog
from .matching import normalised_body
from .wire import HttpExchange

ID_KEYS = frozenset({"id", "tool_call_id", "tool_use_id", "call_id"})
RESPONSE_TEXT_KEYS = frozenset({"content", "text", "arguments", "partial_json", "thinking", "input"})
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_TIMESTAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?\b")
_TOKEN = re.compile(r"\w+|[^\w\s]+")
# A leak must be this long to be told apart from words any two prompts share; once the
# provider has answered differently, much longer (only earlier answers are looked for then).
MIN_LEAK_CHARS = 12
MIN_LEAK_CHARS_DIVERGED = 40
MAX_REPORTED = 3


@dataclass(frozen=True)
class Text:
    """One string of a request body, where it is, and the role of its message."""

    path: str
    text: str
    role: str | None
    dynamic: bool  # a tool result or a follow-up message, not the prompt the crew started with


@dataclass(frozen=True)
class SentRequest:
    """One provider exchange of a run, reduced to its text."""

    kind: str  # "LLM call" or "embeddings request"
    number: int  # 1-based, per kind, in the order the run sent them
    key: tuple[str, ...]  # where in the crew it was sent (task, agent, ...), for pairing runs
    label: str
    request: tuple[Text, ...]
    response: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.kind} {self.number}" + (f" ({self.label})" if self.label else "")


# -- reducing wire calls to text ---------------------------------------------------------------


def _scrub(text: str) -> str:
    return _TIMESTAMP.sub("<time>", _UUID.sub("<uuid>", text))


def _canonical_ids(value: Any, seen: dict[str, str]) -> Any:
    """Ids echoed from responses (tool call ids) replaced by their order of appearance."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ID_KEYS and isinstance(item, str):
                out[key] = seen.setdefault(item, f"<id{len(seen) + 1}>")
            else:
                out[key] = _canonical_ids(item, seen)
        return out
    if isinstance(value, list):
        return [_canonical_ids(item, seen) for item in value]
    return value


def _walk(
    value: Any, path: str, role: str | None, message: int | None
) -> Iterator[tuple[str, str, str | None, int | None]]:
    if isinstance(value, dict):
        if isinstance(value.get("role"), str):
            role = value["role"]
        if value.get("type") in ("tool_result", "function_call_output"):
            role = "tool"
        for key in sorted(value):
            yield from _walk(value[key], f"{path}.{key}" if path else key, role, message)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            inner = index if path in ("messages", "input", "contents") else message
            yield from _walk(item, f"{path}[{index}]", role, inner)
    elif isinstance(value, str):
        yield path, value, role, message
    elif value is not None:
        yield path, json.dumps(value), role, message


def request_texts(body: Any) -> tuple[Text, ...]:
    """The strings of a request body, ids canonical, UUIDs and timestamps masked."""
    data = normalised_body(body)
    if data is None:
        return ()
    if not isinstance(data, (dict, list)):
        return (Text("body", _scrub(str(data)), None, False),)
    data = _canonical_ids(data, {})
    if isinstance(data, dict) and isinstance(data.get("system"), (str, list)):
        data = {**data, "system": {"role": "system", "content": data["system"]}}
    texts = list(_walk(data, "", None, None))
    first_user = min((m for _, _, role, m in texts if role == "user" and m is not None), default=None)
    return tuple(
        Text(
            re.sub(r"^system\.content", "system", path),
            _scrub(text),
            role,
            role == "tool" or (role == "user" and message is not None and message != first_user),
        )
        for path, text, role, message in texts
    )


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _response_strings(value: Any, found: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ID_KEYS:
                continue
            if key == "input" and isinstance(item, dict):  # Anthropic tool_use arguments
                found.append(json.dumps(item, sort_keys=True))
            elif isinstance(item, str):
                if key in RESPONSE_TEXT_KEYS and item:
                    found.append(item)
            else:
                _response_strings(item, found)
    elif isinstance(value, list):
        for item in value:
            _response_strings(item, found)


def response_texts(body: Any) -> tuple[str, ...]:
    """What the provider produced: answer text and tool call arguments (streams joined)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        return ()
    head = body.lstrip()[:6]
    found: list[str] = []
    if head.startswith(("data:", "event:")):
        for line in body.splitlines():
            if line.startswith("data:"):
                _response_strings(_json_or_none(line[5:].strip()), found)
        return (_scrub("".join(found)),) if found else ()
    _response_strings(_json_or_none(body), found)
    return tuple(_scrub(text) for text in found)


def _scope_key(wire: HttpExchange, events: EventLog) -> tuple[tuple[str, ...], str]:
    key: list[str] = []
    agent = task = None
    for event_id, kind in wire.scope:
        if kind == "crew_kickoff_started":
            continue
        event = events.get(event_id)
        if kind == "task_started":
            task = event.task_name if event else None
            key.append(f"task:{task}")
        elif kind == "agent_execution_started":
            agent = event.agent_role if event else None
            key.append(f"agent:{agent}")
        else:
            key.append(kind)
    label = " / ".join(x for x in (agent, task) if x)
    return tuple(key), label


def run_calls(wire_calls: Sequence[HttpExchange], events: EventLog) -> list[SentRequest]:
    """The LLM calls and embedding requests of one run, in the order they were sent."""
    calls: list[SentRequest] = []
    numbers: Counter[str] = Counter()
    for wire in wire_calls:
        if wire.exchange.kind == "llm":
            kind = "LLM call"
        elif wire.exchange.kind == "embedding":
            kind = "embeddings request"
        else:
            continue
        numbers[kind] += 1
        scope, label = _scope_key(wire, events)
        request = request_texts(wire.request_body)
        # Calls made in the same place can still be different kinds of call (CrewAI memory
        # files, analyses and consolidates in one scope); their system prompts tell them apart.
        system = next((t.text for t in request if t.role == "system"), "")
        calls.append(
            SentRequest(
                kind=kind,
                number=numbers[kind],
                key=(kind, *scope, re.sub(r"\d", "0", system[:60])),
                label=label,
                request=request,
                response=response_texts(wire.response_body) if kind == "LLM call" else (),
            )
        )
    return calls


# -- comparing runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    text: str
    run: int
    call: SentRequest
    where: Text
    source: str


@dataclass(frozen=True)
class Difference:
    run: int
    description: str


def _pair(
    first: Sequence[SentRequest], later: Sequence[SentRequest]
) -> list[tuple[SentRequest | None, SentRequest | None]]:
    """Calls of a later run with their run-1 counterpart (same place in the crew, same order)."""
    by_key: dict[tuple[str, ...], list[SentRequest]] = {}
    for call in first:
        by_key.setdefault(call.key, []).append(call)
    used: set[int] = set()
    pairs: list[tuple[SentRequest | None, SentRequest | None]] = []
    for call in later:
        queue = by_key.get(call.key) or []
        match = queue.pop(0) if queue else None
        if match is not None:
            used.add(id(match))
        pairs.append((match, call))
    pairs += [(call, None) for call in first if id(call) not in used]
    return pairs


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _inserted(before: str, after: str) -> list[str]:
    """The stretches of ``after`` that ``before`` does not have (token-level diff)."""
    old, new = _tokens(before), _tokens(after)
    matcher = difflib.SequenceMatcher(None, [t for t, _, _ in old], [t for t, _, _ in new], autojunk=False)
    found = []
    for op, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if op in ("insert", "replace") and j2 > j1:
            found.append(after[new[j1][1] : new[j2 - 1][2]])
    return found


def _longest_common(segment: str, text: str) -> str:
    a, b = _tokens(segment), _tokens(text)
    if not a or not b:
        return ""
    matcher = difflib.SequenceMatcher(None, [t for t, _, _ in a], [t for t, _, _ in b], autojunk=False)
    match = matcher.find_longest_match(0, len(a), 0, len(b))
    if match.size == 0:
        return ""
    return segment[a[match.a][1] : a[match.a + match.size - 1][2]]


def _is_leak(candidate: str, minimum: int) -> bool:
    return len(candidate) >= minimum and any(ch.isalnum() for ch in candidate)


def _sources(run: int, calls: Sequence[SentRequest], answers_only: bool) -> Iterator[tuple[str, str]]:
    for call in calls:
        for text in call.response:
            yield text, f"run {run}, answer of {call.name}"
    if answers_only:
        return
    for call in calls:
        for item in call.request:
            if item.dynamic:
                what = "tool result" if item.role == "tool" else f"{item.role} message"
                yield item.text, f"run {run}, {call.name}, request {item.path} ({what})"


@dataclass(frozen=True)
class _Search:
    """How strictly to look for earlier runs' text in a request."""

    answers_only: bool  # only the provider's answers, not tool results
    minimum: int
    own: Sequence[str] = ()  # texts this run produced itself: they explain a match
    static: str = ""  # run 1's first request: the prompt built from the inputs alone


def _find_leak(
    segment: str, earlier: Sequence[Sequence[SentRequest]], search: _Search
) -> tuple[str, str] | None:
    """The longest stretch of ``segment`` an earlier run produced, and where it did."""
    for number, calls in enumerate(earlier, start=1):
        for text, source in _sources(number, calls, answers_only=search.answers_only):
            common = _longest_common(segment, text).strip()
            if not _is_leak(common, search.minimum):
                continue
            if common in search.static or any(common in mine for mine in search.own):
                continue
            return common, source
    return None


def _excerpt(text: str, part: str, width: int = 70) -> str:
    at = text.find(part)
    if at < 0:
        at = 0
    start, end = max(0, at - width), min(len(text), at + len(part) + width)
    body = text[start:end].replace("\n", "\\n")
    return ("…" if start else "") + body + ("…" if end < len(text) else "")


def _first_change(a: str, b: str) -> int:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return min(len(a), len(b))


def _difference(run: int, call: SentRequest, before: Text | None, after: Text | None) -> Difference:
    where = after or before
    path = where.path if where is not None else "?"
    if before is None and after is not None:
        detail = [
            f"      + run {run}: {_excerpt(after.text, after.text[:60], 0)}",
            "      (run 1 had no such field)",
        ]
    elif after is None and before is not None:
        detail = [
            f"      - run 1: {_excerpt(before.text, before.text[:60], 0)}",
            f"      (run {run} had no such field)",
        ]
    else:
        assert before is not None and after is not None
        at = _first_change(before.text, after.text)
        detail = [
            f"      - run 1: {_excerpt(before.text, before.text[at : at + 40], 60)}",
            f"      + run {run}: {_excerpt(after.text, after.text[at : at + 40], 60)}",
        ]
    return Difference(run, "\n".join([f"    {call.name}, request {path}:", *detail]))


def compare_runs(runs: Sequence[Sequence[SentRequest]]) -> tuple[list[Leak], list[Difference]]:
    """Leaks and unexplained differences of runs 2..N against run 1.

    A call paired with run 1's, while the provider has answered both runs alike, is compared
    field by field: what it added is a leak if an earlier run produced it (an answer or a tool
    result; this run's own identical answers do not explain a second copy), else a
    difference. A call run 1 did not make, or any call once the answers differ, can only be
    searched for earlier runs' answers that this run did not give itself.
    """
    leaks: list[Leak] = []
    differences: list[Difference] = []
    if len(runs) < 2:
        return leaks, differences
    first = runs[0]
    static = "\n".join(t.text for t in first[0].request) if first else ""
    seen_leaks: set[str] = set()

    def leak_in(number: int, call: SentRequest, text: Text, segment: str, search: _Search) -> bool:
        hit = _find_leak(segment, runs[: number - 1], search)
        if hit is None:
            return False
        leaked, source = hit
        if leaked not in seen_leaks:
            seen_leaks.add(leaked)
            leaks.append(Leak(leaked, number, call, text, source))
        return True

    for number, calls in enumerate(runs[1:], start=2):
        own: list[str] = []  # this run's answers so far
        sent: set[str] = set()  # request texts this run already sent
        diverged = False
        for before, after in _pair(first, calls):
            if after is None:
                if not diverged and before is not None:
                    differences.append(
                        Difference(number, f"    run 1 made {before.name}; run {number} did not")
                    )
                continue
            if diverged or before is None:
                search = _Search(True, MIN_LEAK_CHARS_DIVERGED if diverged else MIN_LEAK_CHARS, own, static)
                found = False
                for text in after.request:
                    if text.text not in sent:
                        found = leak_in(number, after, text, text.text, search) or found
                if not diverged and not found:
                    differences.append(
                        Difference(number, f"    run {number} made {after.name}; run 1 made no such call")
                    )
            else:
                search = _Search(False, MIN_LEAK_CHARS)
                old = {t.path: t for t in before.request}
                new = {t.path: t for t in after.request}
                for path, text in new.items():
                    previous = old.get(path)
                    if previous is not None and previous.text == text.text:
                        continue
                    found = False
                    for segment in _inserted(previous.text if previous else "", text.text):
                        found = leak_in(number, after, text, segment, search) or found
                    if not found:
                        differences.append(_difference(number, after, previous, text))
                for path, text in old.items():
                    if path not in new:
                        differences.append(_difference(number, after, text, None))
            sent.update(t.text for t in after.request)
            own.extend(after.response)
            if before is None or before.response != after.response:
                diverged = True
    return leaks, differences


def report(leaks: Sequence[Leak], differences: Sequence[Difference], repeat: int) -> str | None:
    """The failure message for a repeated test, or ``None`` when its runs were alike."""
    if not leaks and not differences:
        return None
    lines: list[str] = []
    if leaks:
        runs = sorted({leak.run for leak in leaks})
        lines.append(
            f"repeat={repeat}: run {', '.join(map(str, runs))} sent text that only an earlier run "
            "produced; state outlives a run and is fed back into the next"
        )
        for leak in leaks[:MAX_REPORTED]:
            role = (
                " (tool result)"
                if leak.where.role == "tool"
                else (f" ({leak.where.role} message)" if leak.where.role else "")
            )
            lines += [
                f"  leaked text: {leak.text!r}",
                f"    appeared in: run {leak.run}, {leak.call.name}, request {leak.where.path}{role}",
                f"      {_excerpt(leak.where.text, leak.text)}",
                f"    produced by: {leak.source}",
            ]
        if len(leaks) > MAX_REPORTED:
            lines.append(f"  ... and {len(leaks) - MAX_REPORTED} more leaked texts")
    if differences:
        lines.append(
            f"repeat={repeat}: later runs sent requests that differ from run 1's (same factory, "
            "same inputs, same answers from the provider so far):"
        )
        for difference in differences[:MAX_REPORTED]:
            lines.append(f"  run {difference.run}:")
            lines.append(difference.description)
        if len(differences) > MAX_REPORTED:
            lines.append(f"  ... and {len(differences) - MAX_REPORTED} more differences")
    lines.append(
        "  Runs of one factory with the same inputs must not depend on each other. Look for a "
        "module-level list, dict or cache that a tool or callback appends to, or a Crew, Agent, "
        "LLM or tool built once outside the factory."
    )
    if differences:
        lines.append(
            "  A difference no earlier run produced can also be a tool or prompt that is not "
            "deterministic (random values, the clock, set ordering): make it deterministic in "
            "tests, or leave it out of what the crew sends."
        )
    return "\n".join(lines)
