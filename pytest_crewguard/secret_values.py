"""Which values are secrets: credential environment variables, read once per environment.

The scrubber replaces these values wherever they appear, and refuses to write a cassette that
still holds one.
"""

from __future__ import annotations

import contextvars
import json
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote

from .environment import REPLAY_KEY_VARIABLES, REPLAY_PLACEHOLDER_KEY

PLACEHOLDER = "crewguard-scrubbed"  # what a secret is replaced with

# Environment variables whose values are scrubbed wherever they appear: these by name, and
# any variable named like a credential (DEEPSEEK_API_KEY, GITHUB_TOKEN, DB_PASSWORD...).
SECRET_ENV_VARIABLES: tuple[str, ...] = (
    *REPLAY_KEY_VARIABLES,
    "AZURE_OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
)
# Any ``*_KEY`` counts (AZURE_OPENAI_KEY, SERPER_KEY): a value scrubbed needlessly is replaced
# alike in recorded and live requests, so it still matches; a key written into a cassette is
# in version control. Public keys are not secrets.
_SECRET_ENV_NAME = re.compile(
    # SERPER_API_KEY2; DB_PASS, GITHUB_PAT, GCP_CREDENTIALS, SLACK_WEBHOOK_URL (the URL is the secret)
    r"(?<!PUBLIC)(?:_KEYS|(?:_KEY|APIKEY|TOKEN|SECRET|PASSWORD|PASSWD|_PASS|_PAT|_PWD|CREDENTIALS?)\d*"
    r"|_WEBHOOK|_WEBHOOK_URL)$",
    re.IGNORECASE,
)
# A credential word with more after it: a second key (OPENAI_API_KEY_2), a variant
# (GITHUB_TOKEN_RO, SECRET_KEY_BASE); not when what follows says the value is about the secret,
# not the secret itself (AWS_ACCESS_KEY_ID, HF_TOKEN_PATH).
_CREDENTIAL_WORD = re.compile(
    r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD)((?:_[A-Z0-9]+)+)$", re.IGNORECASE
)
_NOT_THE_SECRET = frozenset(
    {"ID", "PATH", "FILE", "DIR", "NAME", "URL", "URI", "ENDPOINT", "HOST", "TYPE", "HEADER", "PREFIX",
     "LENGTH", "SIZE", "LIMIT", "AUDIENCE", "ISSUER", "PROJECT", "REGION", "SCOPE", "SCOPES", "VAULT",
     "ENV", "VAR", "EXPIRY", "EXPIRES", "TTL", "ALGORITHM", "FORMAT", "VERSION", "MODEL", "LOCATION"}
)
# Shorter values ("1", "true", "prod") would be replaced all over ordinary text.
MIN_SECRET_LENGTH = 8
_REPLAY_PLACEHOLDERS = frozenset({REPLAY_PLACEHOLDER_KEY, PLACEHOLDER})


_fixed: list[list[tuple[str, str]]] = []  # the values fixed by each open block, innermost last


@contextmanager
def secrets_fixed() -> Iterator[None]:
    """Read the environment's secrets once for a batch, not once per request and response: a
    cassette's thousands of loaded interactions, or a replayed test, whose requests come from
    the crew's worker threads (so the values hold for every thread)."""
    values = secret_env_values()
    _fixed.append(values)
    try:
        yield
    finally:
        _fixed.remove(values)


def secret_env_values() -> list[tuple[str, str]]:
    """``(name, value)`` of every credential-named environment variable worth scrubbing."""
    if _fixed:
        return _fixed[-1]
    # Every request and response asks: the scan is remembered for the environment as it is.
    # Keyed by the environment's raw items (os.environ's own store): reading them through the
    # mapping decodes every name and value, tens of microseconds per call.
    raw = getattr(os.environ, "_data", None)
    return _secret_values(tuple(raw.items()) if isinstance(raw, dict) else tuple(os.environ.items()))


def secrets_so_far() -> list[tuple[str, str]]:
    """:func:`secret_env_values`, and the credentials the test's client has sent under a
    credential name so far (see :func:`remember`): what each answer is scrubbed of when it is
    recorded, and each request's body when it is recorded or replayed, in the order they come
    (so that both ways a request is scrubbed alike)."""
    found = secret_env_values()
    return found + _remembered if _remembered else found


def forget_remembered() -> None:
    """A new test starts: what an earlier test's client sent is not its secret (a test's
    cassette must not depend on which tests ran before it)."""
    with _remembered_lock:
        _remembered.clear()


# Credentials the running test's client sent under a credential name (a header, a query
# parameter, a form or JSON field), as (name, value) pairs like the environment's: a server
# that echoes the request, an error quoting the key or a next-page link would otherwise keep them.
_remembered: list[tuple[str, str]] = []
_remembered_lock = threading.Lock()
_REMEMBERED_KEEP = 256  # a token per request must not slow every scrub
# A signature made for one request (AWS SigV4 signs each request anew) is no key: remembered, it
# would push out the credentials that are, and the secret it is made with never travels.
_ONE_OFF_SIGNATURES = ("AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 ")
_SENT_BY_NAME = "a credential sent by name"


_sending: contextvars.ContextVar[bool] = contextvars.ContextVar("crewguard_sending", default=False)


@contextmanager
def sending() -> Iterator[None]:
    """Within the block a request the client sends is scrubbed: credentials found in it by name
    are remembered. A response is not: a model's tool call may name an argument "secret" and
    give it an ordinary word, which must not be scrubbed from every later prompt."""
    token = _sending.set(True)
    try:
        yield
    finally:
        _sending.reset(token)


def remember(value: Any) -> None:
    """Scrub ``value`` from what the test sends and receives from now on (see
    :func:`secrets_so_far`): its client sent it under a credential name (see :func:`sending`).
    Only what looks like a credential (a token without spaces, of 12 characters or more, of two
    kinds of characters at least), never an ordinary word."""
    if not _sending.get():
        return
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str) or text.startswith(_ONE_OFF_SIGNATURES):
        return
    for word in text.split():  # "Bearer <token>": the token, not the scheme
        pair = (_SENT_BY_NAME, word)
        if _credential_like(word) and word not in _REPLAY_PLACEHOLDERS and pair not in _remembered:
            with _remembered_lock:
                _remembered.append(pair)
                del _remembered[:-_REMEMBERED_KEEP]


def _credential_like(word: str) -> bool:
    if len(word) < 12:
        return False
    kinds = (any(c.islower() for c in word), any(c.isupper() for c in word), any(c.isdigit() for c in word),
             any(not c.isalnum() for c in word))
    return sum(kinds) >= 2


@lru_cache(maxsize=16)
def _secret_values(environ: tuple[tuple[Any, Any], ...]) -> list[tuple[str, str]]:
    # Each test changes a few variables (its storage directory, the replay placeholders), so
    # this misses once per test: the names are classified once, only credentials are decoded.
    named = tuple(item for item in environ if _is_credential_name(item[0]))
    urls = tuple(item for item in environ if _may_hold_a_password(item[1]))
    return _credential_values(named + _url_passwords(urls))


@lru_cache(maxsize=1024)
def _is_credential_name(raw_name: Any) -> bool:
    name = _text(raw_name)
    if name in SECRET_ENV_VARIABLES or _SECRET_ENV_NAME.search(name) is not None:
        return True
    # Real names are short; the pattern is tried from every "_KEY" of a name, so not on long ones.
    word = _CREDENTIAL_WORD.search(name) if len(name) <= 256 else None
    if word is None or name[: word.start()].upper().endswith("PUBLIC"):
        return False
    return not any(part.upper() in _NOT_THE_SECRET for part in word.group(1).split("_"))


def _may_hold_a_password(raw_value: Any) -> bool:
    """A URL with credentials (``postgresql://app:pw@db/app``), by a cheap look at the raw value."""
    scheme, at = ("://", "@") if isinstance(raw_value, str) else (b"://", b"@")
    return scheme in raw_value and at in raw_value


# user:password@ after a scheme, anywhere in a value: one URL or several (a broker list, a
# sentinel list), quoted, or behind a prefix (jdbc:postgresql://...).
_URL_USERINFO = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://([^\s/?#@:\"',;]*):([^\s/?#\"',;]+)@")


def _url_passwords(items: tuple[tuple[Any, Any], ...]) -> tuple[tuple[str, str], ...]:
    """Of variables holding URLs with a password (DATABASE_URL, a broker list, a proxy): each
    URL's ``user:password@``, and the password alone where it looks like one. A default such
    as ``postgres`` or ``changeme`` would otherwise be replaced in every prompt and answer."""
    found: list[tuple[str, str]] = []
    for raw_name, raw_value in items:
        name = _text(raw_name)
        for user, password in _URL_USERINFO.findall(_text(raw_value)):
            found.append((f"{name} (its user and password)", f"{user}:{password}@"))
            plain = unquote(password)
            if _looks_like_a_password(plain, unquote(user)):
                found.append((f"{name} (its password)", plain))
    return tuple(found)


def _looks_like_a_password(value: str, user: str) -> bool:
    kinds = (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    return value != user and sum(any(map(kind, value)) for kind in kinds) >= 2


@lru_cache(maxsize=16)
def _credential_values(named: tuple[tuple[Any, Any], ...]) -> list[tuple[str, str]]:
    found = []
    for raw_name, raw_value in named:
        name, value = _text(raw_name), _text(raw_value)
        if len(value) >= MIN_SECRET_LENGTH and value not in _REPLAY_PLACEHOLDERS:
            found.append((name, value))
    # Longest first, so a value that contains another is replaced whole.
    return sorted(found, key=lambda item: -len(item[1]))


def _text(value: Any) -> str:
    return os.fsdecode(value) if isinstance(value, bytes) else str(value)


@lru_cache(maxsize=256)
def secret_forms(value: str) -> tuple[str, ...]:
    """A secret as it may appear: as is, URL-encoded both ways (in upper- or lower-case hex), and
    escaped inside a JSON string (quotes and backslashes, and non-ASCII as ``\\u00e4`` as most
    JSON writers do), twice for JSON in a JSON string, and with ``\\/`` for ``/``."""
    once = json.dumps(value)[1:-1]
    # Also JSON inside a JSON string (a tool call's arguments), and with "/" written "\\/" as
    # some JSON writers (PHP's, Java's) do.
    json_forms = (once, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(once)[1:-1],
                  once.replace("/", "\\/"))
    encoded = (quote(value, safe=""), quote_plus(value, safe=""))
    lower_hex = tuple(_PERCENT.sub(lambda escape: escape.group(0).lower(), form) for form in encoded)
    return tuple(dict.fromkeys((value, *encoded, *lower_hex, *json_forms)))


_PERCENT = re.compile(r"%[0-9A-F]{2}")
