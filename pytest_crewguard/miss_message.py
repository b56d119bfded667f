"""The message of a cassette miss in replay: why the request has no recorded answer, what
changed against the nearest recorded request, and the command that records it again."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .answer_problems import answer_problem
from .matching import body_diff, body_lines, nearest_request
from .scrubbing import scrub_request

if TYPE_CHECKING:
    from .wire import WireLog


def miss_message(wire: WireLog, request: Any) -> str:
    """Why ``request`` has no recorded answer, what changed, and how to record it.

    Told from a scrubbed copy, as the recordings were compared with: the message goes to the
    terminal and into reports (JUnit XML), where a key in a prompt or a URL must not.
    """
    request = scrub_request(copy.copy(request))
    lines = [
        f"crewguard: no recorded response for {request.method} {request.uri}",
        f"  test:     {wire.nodeid}",
        f"  cassette: {wire.cassette_path} (record mode: {wire.record_mode})",
    ]
    recorded = [r for r, _ in wire.cassette.data]
    if not wire.existed:
        state = "has no interactions" if wire.cassette_exists else "does not exist yet"
        mode = "once" if not wire.cassette_exists else _record_again(wire)
        lines += [
            f"  The cassette {state}, and replay mode never calls the network.",
            "  Record it (this calls the real provider):",
            f"    pytest '{wire.nodeid}' --crewguard-record-mode={mode}",
        ]
        return "\n".join(lines)
    # An interaction already answered cannot answer again: the nearest one still unplayed
    # is what this request was meant to be, and its diff names the field that changed.
    counts = getattr(wire.cassette, "play_counts", {})
    ignored = wire.match_config.ignore_body_fields
    played = [r for i, r in enumerate(recorded) if counts.get(i)]
    unplayed = [r for i, r in enumerate(recorded) if not counts.get(i)]
    lines_of = _lines_cache(wire)
    again = nearest_request(request, played, lines_of)
    if again is not None and not _same(again, request, ignored):
        again = None
    if again is not None:
        # Sent again after its answer: an SDK retries when it could not use an answer, so the
        # cause is in what happened to that answer, not in the request.
        number = _number(recorded, again)
        same = f"  The same request was recorded (interaction {number} of {len(recorded)}) and already "
        same += "answered: "
        problem = answer_problem(wire.cassette.data[number - 1][1])
        if problem is not None:
            lines += [
                same + f"this run sent it again, as an SDK does when the answer fails it: {problem}.",
                f"  Fix interaction {number}'s response in the cassette, or record this test again:",
                f"    pytest '{wire.nodeid}' --crewguard-record-mode={_record_again(wire)}",
            ]
            return "\n".join(lines)
        lines.append(
            same + "this run sent it again. An SDK sends a request again when it could not use "
            "the answer (an error while reading it counts as a connection error, and is "
            "retried); otherwise the run asked more often than the recording did."
        )
    nearest = nearest_request(request, unplayed, lines_of)
    if nearest is None and again is None:  # all answered: the nearest still shows what changed
        nearest = nearest_request(request, recorded, lines_of)
    if nearest is not None:
        position = _number(recorded, nearest)
        diff = body_diff(nearest, request, ignored)
        if nearest.method != request.method:
            method = f"- method: {nearest.method}\n+ method: {request.method}"
            diff = method if _equal(diff) else f"{method}\n{diff}"
        state = "not yet answered" if any(nearest is r for r in unplayed) else "(already answered)"
        if _equal(diff):
            names = ", ".join(wire.match_config.match_on)
            lines.append(
                f"  Nearest recorded request {state}: interaction {position} of {len(recorded)}, with "
                f"the same method, URL and body; the cassette also compares what differs ({names})."
            )
        else:
            where = f"interaction {position} of {len(recorded)}"
            lines.append(f"  Nearest recorded request {state}: {where}; what changed:")
            lines += ["    " + line for line in diff.splitlines()]
    lines += [
        "  If the change is intended, record this test again (this calls the real provider):",
        f"    pytest '{wire.nodeid}' --crewguard-record-mode={_record_again(wire)}",
    ]
    return "\n".join(lines)


def _record_again(wire: WireLog) -> str:
    """The record mode that records this test again: ``rewrite`` starts its cassette afresh,
    which on a cassette the marker shares with other tests would drop their recordings;
    ``new_episodes`` adds this test's requests and keeps theirs."""
    return "new_episodes" if wire.shared else "rewrite"


def _lines_cache(wire: WireLog) -> Callable[[Any], list[str]]:
    """:func:`body_lines` of the recorded requests, made once per test rather than per miss
    (a crew that changed misses at every call, against the same recordings). By identity:
    the cassette holds its requests for the whole test."""
    cache = wire.recorded_lines

    def lines_of(request: Any) -> list[str]:
        key = id(request)
        if key not in cache:
            cache[key] = body_lines(request.body)
        return cache[key]

    return lines_of


def _number(recorded: list[Any], request: Any) -> int:
    """The interaction's number in the cassette, counted from 1 (by identity: requests that
    compare equal may be recorded more than once)."""
    return next(i for i, r in enumerate(recorded, 1) if r is request)


def _same(recorded: Any, request: Any, ignored: frozenset[str]) -> bool:
    """Whether ``request`` was sent exactly as ``recorded`` (method, URL, normalised body)."""
    return bool(recorded.method == request.method and _equal(body_diff(recorded, request, ignored)))


def _equal(diff: str) -> bool:
    return diff.startswith("(bodies are equal")
