"""How a request finds its recorded answer, and what a miss looks like.

Requests match on method, URL and a normalised JSON body: key order and volatile fields (ids,
timestamps, retry counters) do not take part, so a changed prompt is a miss, never a stale
answer. Headers never take part (``x-stainless-*`` headers change with every SDK release).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .match_config import MatchConfig
from .stand_ins import is_telemetry

# Body fields that change between two runs of the same crew without changing its meaning.
VOLATILE_FIELDS: frozenset[str] = frozenset(
    {"user", "metadata", "request_id", "idempotency_key", "timestamp", "created", "retry_count"}
)


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes):
        return body.decode("utf-8", errors="replace")
    return str(body)


def normalised_body(body: Any, ignored: frozenset[str] = frozenset()) -> Any:
    """The request body as JSON without volatile (or ``ignored``) top-level fields; the raw
    text when it is not JSON."""
    text = _body_text(body)
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return text
    if isinstance(data, dict):
        return {k: v for k, v in data.items() if k not in VOLATILE_FIELDS and k not in ignored}
    return data


def body_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: raise ``AssertionError`` when the normalised bodies differ."""
    if normalised_body(r1.body) != normalised_body(r2.body):
        raise AssertionError("request bodies differ")


def method_matcher(r1: Any, r2: Any) -> None:
    """vcrpy matcher: the HTTP method, whatever its case (vcrpy's aiohttp stub keeps the
    caller's ``post`` where other stubs and recordings say ``POST``)."""
    if str(r1.method).upper() != str(r2.method).upper():
        raise AssertionError(f"{r1.method} != {r2.method}")


def body_matcher_for(config: MatchConfig) -> Callable[[Any, Any], None]:
    """:func:`body_matcher` that also leaves out the project's ignored body fields."""
    if not config.ignore_body_fields:
        return body_matcher
    ignored = config.ignore_body_fields

    def matcher(r1: Any, r2: Any) -> None:
        if normalised_body(r1.body, ignored) != normalised_body(r2.body, ignored):
            raise AssertionError("request bodies differ")

    return matcher


def normalising(matcher: Callable[[Any, Any], Any], config: MatchConfig) -> Callable[[Any, Any], Any]:
    """``matcher`` applied to both requests after the project's URL rules (hosts, query)."""
    if not config.normalises:
        return matcher
    from vcr.request import Request

    def normalised(request: Any) -> Any:
        return Request(request.method, config.normalised_uri(request.uri), request.body, request.headers)

    def wrapped(r1: Any, r2: Any) -> Any:
        return matcher(normalised(r1), normalised(r2))

    return wrapped


def _flatten(value: Any, path: str = "") -> Iterator[str]:
    """One line per scalar, prompts split at newlines, so a diff points at the changed line."""
    if isinstance(value, dict):
        if not value and path:
            yield f"{path}: {{}}"
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if not value:  # `"stop": []` and an absent `stop` differ, and the diff must say so
            yield f"{path}: []"
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}[{index}]")
    elif isinstance(value, str):
        for line in value.splitlines() or [""]:
            yield f"{path}: {line}"
    else:
        yield f"{path}: {json.dumps(value)}"


def body_lines(body: Any, ignored: frozenset[str] = frozenset()) -> list[str]:
    """A request body as diffable lines."""
    return list(_flatten(normalised_body(body, ignored)))


def _same_endpoint(a: Any, b: Any) -> bool:
    return bool(a.method == b.method and a.host == b.host and a.path == b.path)


def _is_binary(body: Any) -> bool:
    if not isinstance(body, bytes):
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


# difflib's exact similarity is quadratic in a body's lines (a long conversation has
# thousands), its upper bound quick_ratio linear. Every candidate gets the bound; then, best
# bound first, the exact score until no bound left can beat the best score, within a budget of
# line pairs compared: small cassettes get the exact nearest, a miss against a large one of long
# conversations stays fast (the nearest request only picks what the diff is shown against).
_EXACT_AT_LEAST = 5
_EXACT_BUDGET = 5_000_000  # lines of the request x lines of a candidate, summed


def nearest_request(
    request: Any, candidates: Iterable[Any], lines_of: Callable[[Any], list[str]] | None = None
) -> Any | None:
    """The recorded request most like ``request``: same endpoint first, then body similarity.

    Telemetry exports and binary bodies (protobuf, uploads) are never the nearest: a diff
    against them explains nothing. ``lines_of`` gives a candidate's :func:`body_lines` (a
    cache across several calls).
    """
    lines = lines_of or (lambda r: body_lines(r.body))
    mine = body_lines(request.body)
    matcher = difflib.SequenceMatcher(None, b=mine)  # analysed once
    bounded: list[tuple[float, int, Any, float]] = []
    for order, candidate in enumerate(candidates):
        if is_telemetry(candidate.uri) or _is_binary(candidate.body):
            continue
        matcher.set_seq1(lines(candidate))
        bonus = 1.0 if _same_endpoint(request, candidate) else 0.0
        bounded.append((bonus + matcher.quick_ratio(), -order, candidate, bonus))
    bounded.sort(key=lambda b: b[:2], reverse=True)
    best: tuple[float, int, Any] | None = None
    spent = 0
    for scored, (bound, negative_order, candidate, bonus) in enumerate(bounded):
        if best is not None and (bound < best[0] or (scored >= _EXACT_AT_LEAST and spent > _EXACT_BUDGET)):
            break  # by bound, highest first: no later one can score more (or the budget is spent)
        theirs = lines(candidate)
        spent += len(mine) * len(theirs)
        matcher.set_seq1(theirs)
        score = (bonus + matcher.ratio(), negative_order)
        if best is None or score > best[:2]:  # ties: the earlier candidate
            best = (*score, candidate)
    return best[2] if best else None


def body_diff(
    recorded: Any, live: Any, ignored: frozenset[str] = frozenset(), context: int = 2, limit: int = 40
) -> str:
    """A unified diff from the recorded request body to the live one, at most ``limit`` lines."""
    diff = list(
        difflib.unified_diff(
            body_lines(recorded.body, ignored),
            body_lines(live.body, ignored),
            fromfile="recorded",
            tofile="this run",
            n=context,
            lineterm="",
        )
    )
    if recorded.uri != live.uri:
        diff = [f"- url: {recorded.uri}", f"+ url: {live.uri}", *diff]
    if len(diff) > limit:
        diff = [*diff[:limit], f"... ({len(diff) - limit} more diff lines)"]
    return "\n".join(diff) if diff else "(bodies are equal after normalisation)"
