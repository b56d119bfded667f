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
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from .sent_requests import SentRequest, Text

_TOKEN = re.compile(r"\w+|[^\w\s]+")
# A leak must be this long to be told apart from words any two prompts share; once the
# provider has answered differently, much longer (only earlier answers are looked for then).
MIN_LEAK_CHARS = 12
MIN_LEAK_CHARS_DIVERGED = 40
MAX_REPORTED = 3


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
