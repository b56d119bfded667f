"""How a project tells crewguard which requests are "the same": ``match_on`` and ``crewguard_config``.

By default a request matches a recorded one on method, URL and normalised JSON body. Cassettes
recorded by other tools often need less (CrewAI's own match body-blind, on method and URL
parts) or a little normalisation first (Azure's ``api-version`` query parameter, Bedrock's
region in the host, ``max_tokens`` in the body). The rules are applied to both sides of a
comparison, the recorded request and this run's, so old cassettes need no rewriting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import ConfigError

# vcrpy's own matcher names (vcr.config.VCR.matchers), plus crewguard's normalised body.
VCR_MATCHERS: tuple[str, ...] = (
    "method", "uri", "url", "path", "query", "host", "port", "scheme", "body", "raw_body", "headers",
)
DEFAULT_MATCH_ON: tuple[str, ...] = ("method", "scheme", "host", "port", "path", "query", "crewguard_body")

Matcher = Callable[[Any, Any], Any]

CONFIG_KEYS: tuple[str, ...] = (
    "match_on", "ignore_query_params", "ignore_body_fields", "rewrite_hosts", "matchers",
)


@dataclass(frozen=True)
class MatchConfig:
    """The matching rules of one test: matcher names and the normalisation applied first."""

    match_on: tuple[str, ...] = DEFAULT_MATCH_ON
    ignore_query_params: frozenset[str] = frozenset()
    ignore_body_fields: frozenset[str] = frozenset()
    rewrite_hosts: tuple[tuple[re.Pattern[str], str], ...] = ()
    matchers: Mapping[str, Matcher] = field(default_factory=dict)

    @property
    def checks_body(self) -> bool:
        """Whether request bodies take part (False for body-blind cassettes from other tools)."""
        return any(name in ("body", "raw_body", "crewguard_body") for name in self.match_on) or bool(
            self.matchers
        )

    @property
    def normalises(self) -> bool:
        return bool(self.ignore_query_params or self.rewrite_hosts)

    def normalised_uri(self, uri: str) -> str:
        """``uri`` with hosts rewritten and ignored query parameters left out."""
        parts = urlsplit(uri)
        netloc = parts.netloc
        for pattern, replacement in self.rewrite_hosts:
            host = parts.hostname or ""
            if pattern.fullmatch(host):
                netloc = netloc.replace(host, pattern.sub(replacement, host), 1)
        query = parts.query
        if self.ignore_query_params:
            ignored = {name.lower() for name in self.ignore_query_params}
            kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() not in ignored]
            query = urlencode(kept)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _names(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v.strip() for v in value.replace("\n", ",").split(",") if v.strip()]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{what}={value!r}: expected a list of names")
    return tuple(value)


def parse_match_on(value: Any, what: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Check matcher names (vcrpy's, ``crewguard_body``, or a project's own from ``extra``)."""
    names = _names(value, what)
    known = (*VCR_MATCHERS, "crewguard_body", *extra)
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{what}: unknown matcher {name!r}{hint}; known: {', '.join(known)}")
    if not names:
        raise ConfigError(f"{what}: give at least one matcher, e.g. ['method', 'path']")
    return names


def config_from_fixture(data: Any, match_on: Sequence[str] | None) -> MatchConfig:
    """Validate what a project's ``crewguard_config`` fixture returned.

    ``match_on`` (from the marker or the ini) wins over the fixture's own ``match_on``.
    """
    where = "the crewguard_config fixture"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} returned {type(data).__name__}; it must return a dict")
    for key in data:
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(str(key), CONFIG_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(CONFIG_KEYS)}")
    matchers = data.get("matchers") or {}
    if not isinstance(matchers, Mapping) or not all(callable(m) for m in matchers.values()):
        raise ConfigError(f"{where}: 'matchers' must map names to functions matcher(r1, r2)")
    rewrites = data.get("rewrite_hosts") or {}
    if not isinstance(rewrites, Mapping):
        raise ConfigError(f"{where}: 'rewrite_hosts' must map a host regex to its replacement")
    try:
        compiled = tuple((re.compile(str(k)), str(v)) for k, v in rewrites.items())
    except re.error as err:
        raise ConfigError(f"{where}: 'rewrite_hosts' has a bad regex: {err}") from None
    if match_on is not None:
        names = tuple(match_on)
    elif data.get("match_on") is not None:
        names = parse_match_on(data["match_on"], f"{where}: match_on", extra=list(matchers))
    else:
        names = DEFAULT_MATCH_ON
    return MatchConfig(
        match_on=(*names, *(m for m in matchers if m not in names)),
        ignore_query_params=frozenset(_names(data.get("ignore_query_params") or [], "ignore_query_params")),
        ignore_body_fields=frozenset(_names(data.get("ignore_body_fields") or [], "ignore_body_fields")),
        rewrite_hosts=compiled,
        matchers=dict(matchers),
    )
