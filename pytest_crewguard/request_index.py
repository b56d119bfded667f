"""Finding a request's recorded answer without scanning the cassette.

vcrpy compares a request with every recorded one, matcher by matcher, parsing both JSON
bodies each time: a long crew's replay is quadratic in its cassette. Most matchers compare one
plain part of the request (method, host, path, query, crewguard's normalised body), so the
recorded requests are indexed once by those parts: a request's key finds the recorded ones it
can match, in recorded order. When every matcher is plain the first unplayed one is the answer;
other matchers (a project's own, vcrpy's ``body`` or ``headers``) are then applied to that
bucket only, so the answer is the one vcrpy's scan would give.

Bodies are keyed by a digest of their normalised JSON (keys sorted): two bodies share a key
exactly when they are the same JSON after normalisation. (One difference with a scan: ``1`` and
``1.0`` are different bodies here, as they are on the wire.)
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from .match_config import MatchConfig
from .matching import normalised_body

KeyPart = Callable[[Any], Any]
_KEYS_KEPT = 100_000  # requests whose key is remembered, per cassette (recorded ones first)


def _body_part(ignored: frozenset[str]) -> KeyPart:
    def part(request: Any) -> Any:
        value = normalised_body(request.body, ignored)
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    return part


# How each plain matcher reads its part; the values compare as vcrpy's matchers do.
_PLAIN: dict[str, KeyPart] = {
    "method": lambda r: str(r.method).upper(),  # crewguard's method matcher ignores case
    "scheme": lambda r: r.scheme,
    "host": lambda r: r.host,
    "port": lambda r: r.port,
    "path": lambda r: r.path,
    "query": lambda r: tuple(r.query),
    "uri": lambda r: r.uri,
    "url": lambda r: r.uri,
}


class RequestIndex:
    """Recorded requests by key, each key's interactions in recorded order, unplayed first.

    ``matchers`` are the cassette's vcrpy matcher functions, in the order of
    ``config.match_on``; those that are not plain are applied within a key's bucket.
    """

    def __init__(self, config: MatchConfig, matchers: Sequence[Callable[[Any, Any], Any]]) -> None:
        parts: list[KeyPart] = []
        rest: list[Callable[[Any, Any], Any]] = []
        for name, matcher in zip(config.match_on, matchers, strict=True):
            if name in config.matchers:  # a project's own matcher, whatever its name
                rest.append(matcher)
            elif name == "crewguard_body":
                parts.append(_body_part(config.ignore_body_fields))
            elif name in _PLAIN:
                parts.append(_PLAIN[name])
            else:
                rest.append(matcher)
        self._parts = parts
        self._rest = rest
        self._normalise: Callable[[Any], Any] = _normaliser(config)
        self._unplayed: dict[tuple[Any, ...], deque[int]] = {}
        self._all: dict[tuple[Any, ...], list[int]] = {}
        # Keys by the request as sent: a replayed request is byte for byte a recorded one, and
        # its key then needs no JSON parsing, normalising and hashing of the body again.
        self._keys: dict[tuple[str, str, bytes | str | None], tuple[Any, ...]] = {}

    @property
    def exact(self) -> bool:
        """Whether a key alone decides a match (no matcher left to apply in its bucket)."""
        return not self._rest

    def key(self, request: Any) -> tuple[Any, ...]:
        """The key of a (scrubbed) request: its plain parts after the project's URL rules."""
        body = request.body
        # Method, URI and body decide every part (the project's matchers are applied apart).
        sent = None
        if body is None or isinstance(body, (bytes, str)):
            sent = (str(request.method), str(request.uri), body)
            known = self._keys.get(sent)
            if known is not None:
                return known
        normalised = self._normalise(request)
        key = tuple(part(normalised) for part in self._parts)
        if sent is not None and len(self._keys) < _KEYS_KEPT:
            self._keys[sent] = key
        return key

    def add(self, position: int, request: Any) -> None:
        """Index the recorded request at ``position`` in the cassette."""
        key = self.key(request)
        self._unplayed.setdefault(key, deque()).append(position)
        self._all.setdefault(key, []).append(position)

    def find(
        self, request: Any, key: tuple[Any, ...], recorded: Callable[[int], Any], repeats: bool
    ) -> int | None:
        """The position of the interaction that answers ``request``: the first unplayed one that
        matches (any match with ``repeats``), or ``None``. Does not mark it played."""
        bucket: Sequence[int] = self._all.get(key, ()) if repeats else self._unplayed.get(key, ())
        if self.exact:
            return bucket[0] if bucket else None
        from vcr.matchers import requests_match

        for position in bucket:
            if requests_match(request, recorded(position), self._rest):
                return position
        return None

    def played(self, key: tuple[Any, ...], position: int) -> None:
        """Mark ``position`` played: it answers no further request (without repeats)."""
        bucket = self._unplayed.get(key)
        if bucket:
            if bucket[0] == position:
                bucket.popleft()
            else:
                bucket.remove(position)


def _normaliser(config: MatchConfig) -> Callable[[Any], Any]:
    if not config.normalises:
        return lambda request: request
    from vcr.request import Request

    def normalised(request: Any) -> Any:
        return Request(request.method, config.normalised_uri(request.uri), request.body, request.headers)

    return normalised
