"""Keeping secrets out of cassettes: what is scrubbed on record, and what refuses a write.

Scrubbed (the value replaced by ``PLACEHOLDER``, so recording goes on): credential-named
headers, query parameters and JSON fields, whatever the value looks like, and the value of every
credential-named environment variable wherever it appears. Bodies are scrubbed and scanned in
decoded form: compressed bodies are decompressed, bodies that are not UTF-8 are read byte for
byte. A key-shaped string that is still there afterwards refuses the write.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit, urlunsplit

from .body_codec import decoded, interaction_bodies
from .environment import REPLAY_KEY_VARIABLES, REPLAY_PLACEHOLDER_KEY
from .errors import CassetteError

PLACEHOLDER = "crewguard-scrubbed"

# Request headers that are dropped outright (credentials or account identity). Lower-case.
SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "x-goog-api-key",
        "openai-organization",
        "openai-project",
        "anthropic-organization-id",
        "cookie",
        "x-amz-security-token",
    }
)
# Response headers that identify the account or carry session cookies: dropped.
SECRET_RESPONSE_HEADERS: frozenset[str] = frozenset(
    {"set-cookie", "openai-organization", "openai-project", "anthropic-organization-id"}
)
# Any other header with one of these words in its name has its value replaced
# (``Ocp-Apim-Subscription-Key``, ``Helicone-Auth``, ``X-Auth-Token``). Whole words only:
# ``x-ratelimit-remaining-tokens`` is a count, not a credential.
_HEADER_WORDS = frozenset(
    {"auth", "authorization", "key", "apikey", "token", "secret", "password", "passwd",
     "signature", "cookie", "credential", "credentials", "sig"}
)
# Query parameters (any case): Google's key=, Azure Functions' code=, Azure SAS sig=, ...
SECRET_QUERY_PARAMETERS: tuple[str, ...] = (
    "key", "api_key", "apikey", "api-key", "access_token", "code", "sig", "signature", "token",
    "auth", "password", "secret", "client_secret", "subscription-key", "x-api-key",
)
# JSON fields, compared without case, '-' or '_': "api_key", "apiKey", "client_secret"...
# A bare "token" or "key" is not one (logprobs carry {"token": "Hello"}).
_FIELD_SUFFIXES = (
    "apikey", "accesstoken", "refreshtoken", "authtoken", "sessiontoken", "idtoken", "apitoken",
    "bearertoken", "secret", "password", "passwd", "secretkey", "privatekey", "accesskey",
    "subscriptionkey", "authorization",
)

# Shapes of provider keys: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), Google (AIza), AWS (AKIA).
# Not inside a longer word: "risk-assessment-calculator" holds "sk-" but is no key.
KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9_-])"
    r"(?:sk-(?:proj-|ant-[a-z0-9]+-|ant-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|AKIA[0-9A-Z]{16})"
)
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
_SECRET_ENV_NAME = re.compile(
    r"(?:API_?KEY|ACCESS_KEY|SECRET_KEY|PRIVATE_KEY|SUBSCRIPTION_KEY|TOKEN|SECRET|PASSWORD|PASSWD)$",
    re.IGNORECASE,
)
# Shorter values ("1", "true", "prod") would be replaced all over ordinary text.
MIN_SECRET_LENGTH = 8
_REPLAY_PLACEHOLDERS = frozenset({REPLAY_PLACEHOLDER_KEY, PLACEHOLDER})


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


@lru_cache(maxsize=4096)  # a cassette repeats the same few names thousands of times
def is_secret_header(name: str) -> bool:
    """A header whose value is a credential: a known name or one with a credential word."""
    return name.lower() in SECRET_HEADERS or any(w in _HEADER_WORDS for w in _words(name))


@lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    """A JSON field (any depth) whose value is a credential, e.g. ``api_key``, ``clientSecret``."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return flat.endswith(_FIELD_SUFFIXES)


_fixed = threading.local()


_fixed_everywhere: list[list[tuple[str, str]]] = []  # innermost last


@contextmanager
def secrets_fixed(every_thread: bool = False) -> Iterator[None]:
    """Read the environment's secrets once for a batch (a cassette's thousands of loaded
    interactions), not once per request and response; for the calling thread, or for
    ``every_thread`` (a replayed test: its requests come from the crew's worker threads)."""
    values = secret_env_values()
    if every_thread:
        _fixed_everywhere.append(values)
        try:
            yield
        finally:
            _fixed_everywhere.remove(values)
        return
    previous = getattr(_fixed, "values", None)
    _fixed.values = values
    try:
        yield
    finally:
        _fixed.values = previous


def secret_env_values() -> list[tuple[str, str]]:
    """``(name, value)`` of every credential-named environment variable worth scrubbing."""
    fixed: list[tuple[str, str]] | None = getattr(_fixed, "values", None)
    if fixed is not None:
        return fixed
    if _fixed_everywhere:
        return _fixed_everywhere[-1]
    # Every request and response asks: the scan is remembered for the environment as it is.
    return _secret_values(tuple(os.environ.items()))


@lru_cache(maxsize=16)
def _secret_values(environ: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    found = []
    for name, value in environ:
        if name in SECRET_ENV_VARIABLES or _SECRET_ENV_NAME.search(name):
            if len(value) >= MIN_SECRET_LENGTH and value not in _REPLAY_PLACEHOLDERS:
                found.append((name, value))
    # Longest first, so a value that contains another is replaced whole.
    return sorted(found, key=lambda item: -len(item[1]))


@lru_cache(maxsize=256)
def _forms(value: str) -> tuple[str, ...]:
    """A secret as it may appear: as is, and URL-encoded both ways."""
    return tuple(dict.fromkeys((value, quote(value, safe=""), quote_plus(value, safe=""))))


def _scrub_text(text: str, secrets: list[tuple[str, str]]) -> str:
    for _, value in secrets:
        for form in _forms(value):
            if form in text:
                text = text.replace(form, PLACEHOLDER)
    return text


def scrub_uri(uri: str, secrets: list[tuple[str, str]] | None = None) -> str:
    """Replace credential query parameters' values and secret values in a URL."""
    secrets = secret_env_values() if secrets is None else secrets
    parts = urlsplit(uri)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        if any(name.lower() in SECRET_QUERY_PARAMETERS for name, _ in pairs):
            query = urlencode(
                [(n, PLACEHOLDER if n.lower() in SECRET_QUERY_PARAMETERS else v) for n, v in pairs]
            )
            uri = urlunsplit(parts._replace(query=query))
    return _scrub_text(uri, secrets)


def scrub_headers(
    headers: Mapping[str, Any], drop: frozenset[str], secrets: list[tuple[str, str]]
) -> dict[str, Any]:
    """Drop the ``drop`` headers, replace other credential headers, scrub secret values."""
    scrubbed: dict[str, Any] = {}
    for name, value in headers.items():
        if name.lower() in drop:
            continue
        if is_secret_header(name):
            value = [PLACEHOLDER] * len(value) if isinstance(value, list) else PLACEHOLDER
        elif isinstance(value, list):
            value = [_scrub_text(v, secrets) if isinstance(v, str) else v for v in value]
        elif isinstance(value, str):
            value = _scrub_text(value, secrets)
        scrubbed[name] = value
    return scrubbed


def _scrub_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: PLACEHOLDER if is_secret_field(str(k)) and isinstance(v, str) and v else _scrub_json(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    if isinstance(value, str) and value[:1] in ("{", "["):
        # JSON inside a string: a tool call's "arguments" carry the tool's own fields.
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        cleaned = _scrub_json(inner)
        return value if cleaned == inner else json.dumps(cleaned, ensure_ascii=False)
    return value


def _has_secret_field(value: Any) -> bool:
    """Whether :func:`_scrub_json` would change ``value``: a walk that builds nothing, since
    almost no body has a credential field and every recorded and replayed body is checked."""
    if isinstance(value, dict):
        return any(
            (is_secret_field(str(k)) and isinstance(v, str) and v) or _has_secret_field(v)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return any(_has_secret_field(v) for v in value)
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            inner = json.loads(value)
        except ValueError:
            return False
        return _has_secret_field(inner)
    return False


def scrub_body(body: Any, headers: Mapping[str, Any], secrets: list[tuple[str, str]]) -> Any:
    """The body with credential JSON fields and secret values replaced; same type, same encoding."""
    if not isinstance(body, (bytes, str)) or not body:
        return body
    text, encode = decoded(body.encode("utf-8") if isinstance(body, str) else body, headers)
    new = _scrub_text(text, secrets)
    try:
        data = json.loads(new)
    except ValueError:
        pass
    else:
        if _has_secret_field(data):
            new = json.dumps(_scrub_json(data), ensure_ascii=False, separators=(",", ":"))
    if new == text:
        return body
    return new if isinstance(body, str) else encode(new)


def scrub_request(request: Any) -> Any:
    """vcrpy ``before_record_request``: applied to recorded and live requests alike, so a
    scrubbed request still matches its recording."""
    secrets = secret_env_values()
    request.headers = scrub_headers(request.headers, SECRET_HEADERS, secrets)
    request.uri = scrub_uri(request.uri, secrets)
    body = request.body_bytes if hasattr(request, "body_bytes") else request.body
    cleaned = scrub_body(body, request.headers, secrets)
    if cleaned is not body:
        request.body = cleaned
    return request


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """vcrpy ``before_record_response``: credential headers and secret values out of a response."""
    secrets = secret_env_values()
    headers = response.get("headers") or {}
    response["headers"] = scrub_headers(headers, SECRET_RESPONSE_HEADERS, secrets)
    body = response.get("body")
    if isinstance(body, dict) and "string" in body:
        body["string"] = scrub_body(body["string"], headers, secrets)
    return response


def scrub_interaction(interaction: dict[str, Any]) -> dict[str, Any]:
    """Scrub one serialized cassette interaction (``{"request": ..., "response": ...}``)."""
    secrets = secret_env_values()
    request = interaction.get("request")
    if isinstance(request, dict):
        headers = request.get("headers") or {}
        request["headers"] = scrub_headers(headers, SECRET_HEADERS, secrets)
        if isinstance(request.get("uri"), str):
            request["uri"] = scrub_uri(request["uri"], secrets)
        request["body"] = scrub_body(request.get("body"), headers, secrets)
    if isinstance(interaction.get("response"), dict):
        scrub_response(interaction["response"])
    return interaction


def mask(secret: str) -> str:
    """At most the first 4 characters of a secret, enough to tell which key it is."""
    return f"{secret[:4]}…" if len(secret) >= MIN_SECRET_LENGTH else "…"


def find_secret(text: str) -> tuple[str, int] | None:
    """The first key-shaped string or known secret value in ``text`` (masked) and its offset."""
    for name, value in secret_env_values():
        if value in text:
            return f"the value of ${name} ({mask(value)})", text.index(value)
    match = KEY_SHAPED.search(text)
    if match:
        return f"a key-shaped string ({mask(match.group(0))})", match.start()
    return None


def refuse_secrets(path: str, serialized: str, interactions: list[Any] | None = None) -> None:
    """Raise when a cassette still holds a secret, in its text or in any decoded body."""
    found = find_secret(serialized)
    where = ""
    if found is not None:
        what, offset = found
        where = f"at line {serialized.count(chr(10), 0, offset) + 1}"
    else:
        for place, text in interaction_bodies(interactions or []):
            found = find_secret(text)
            if found is not None:
                what, where = found[0], f"in {place} (decoded)"
                break
    if found is None:
        return
    raise CassetteError(
        f"crewguard refused to write cassette {path}: it contains {what} {where}. "
        "Credential headers, query parameters and JSON fields, and the values of credential "
        "environment variables, are scrubbed automatically; this one is elsewhere (prompt text, "
        "a tool result). Remove it from the request (use an environment variable the SDK "
        "reads), then record again. Nothing was written."
    )
