"""Keeping secrets out of cassettes: what is scrubbed on record, and what refuses a write.

Scrubbed (the value replaced by ``PLACEHOLDER``, so recording goes on): credential-named
headers, query parameters and JSON fields, whatever the value looks like, and the value of every
credential-named environment variable wherever it appears. Bodies are scrubbed and scanned in
decoded form: compressed bodies are decompressed, bodies that are not UTF-8 are read byte for
byte. What is still there afterwards is for :mod:`.secret_refusal` to find.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .body_codec import content_encoding, content_type, decoded
from .secret_values import PLACEHOLDER, secret_env_values, secret_forms

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

# A value that is a credential by its form, whatever the header or field holding it is called
# (``X-Upstream: Basic dXNlcjpw...``, ``{"upstream": "Bearer eyJ..."}``): the scheme is kept.
_SCHEME_VALUE = re.compile(r"(?i)^\s*(basic|bearer|digest|aws4-hmac-sha256)\s+(\S.*?)\s*$")


def _is_credential_value(value: str) -> bool:
    """Checked by form, not by the scheme's word alone: "Basic concepts" or "Bearer
    responsibilities" in a prompt are no credentials."""
    found = _SCHEME_VALUE.match(value)
    if found is None or found.group(2) == PLACEHOLDER:
        return False
    scheme, rest = found.group(1).lower(), found.group(2)
    if scheme == "basic":  # base64 of user:password
        try:
            return b":" in base64.b64decode(rest, validate=True)
        except (ValueError, binascii.Error):
            return False
    if scheme == "bearer":  # one opaque token or JWT: long, with digits or punctuation
        return len(rest) >= 16 and not any(c.isspace() for c in rest) and any(c in _TOKEN_MARKS for c in rest)
    return "response=" in rest.lower() or "signature=" in rest.lower()  # signed: Digest, AWS SigV4


_TOKEN_MARKS = frozenset("0123456789._-~+/=")


def _scrub_credential_value(value: str) -> str:
    """``value`` with the credential after its scheme replaced; ``value`` when it is none."""
    return f"{value.split()[0]} {PLACEHOLDER}" if _is_credential_value(value) else value


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


def scrub_text(text: str, secrets: list[tuple[str, str]]) -> str:
    """``text`` with every form of the ``secrets``' values replaced."""
    for _, value in secrets:
        for form in secret_forms(value):
            if form in text:
                text = text.replace(form, PLACEHOLDER)
    return text


def scrub_uri(uri: str, secrets: list[tuple[str, str]] | None = None) -> str:
    """Replace credential query parameters' values and secret values in a URL."""
    secrets = secret_env_values() if secrets is None else secrets
    parts = urlsplit(uri)
    if parts.password:  # https://user:password@host
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username}:{PLACEHOLDER}@{host}")
        uri = urlunsplit(parts)
    if parts.query:
        query = _scrub_pairs(parts.query)
        if query is not parts.query:
            uri = urlunsplit(parts._replace(query=query))
    return scrub_text(uri, secrets)


def _scrub_pairs(encoded: str) -> str:
    """A query string or form-encoded body with its credential fields' values replaced;
    ``encoded`` itself when it has none."""
    pairs = parse_qsl(encoded, keep_blank_values=True)
    if not any(_is_secret_query(name) for name, _ in pairs):
        return encoded
    return urlencode([(n, PLACEHOLDER if _is_secret_query(n) else v) for n, v in pairs])


@lru_cache(maxsize=1024)
def _is_secret_query(name: str) -> bool:
    """A known credential parameter, or one with a credential word, as for headers
    (``auth_token``, ``client-secret``, ``X-Amz-Signature``)."""
    return name.lower() in SECRET_QUERY_PARAMETERS or any(w in _HEADER_WORDS for w in _words(name))


def scrub_headers(
    headers: Mapping[str, Any], drop: frozenset[str], secrets: list[tuple[str, str]]
) -> Mapping[str, Any]:
    """Drop the ``drop`` headers, replace other credential headers, scrub secret values.

    ``headers`` itself comes back when nothing in it needs scrubbing (a recorded request or
    response, scrubbed when it was written), otherwise a new ``dict``.
    """
    if not _needs_scrubbing(headers, drop, secrets):
        return headers
    scrubbed: dict[str, Any] = {}
    for name, value in headers.items():
        if name.lower() in drop:
            continue
        if is_secret_header(name):
            value = [PLACEHOLDER] * len(value) if isinstance(value, list) else PLACEHOLDER
        elif isinstance(value, list):
            value = [_scrub_header_value(v, secrets) for v in value]
        else:
            value = _scrub_header_value(value, secrets)
        scrubbed[name] = value
    return scrubbed


def _scrub_header_value(value: Any, secrets: list[tuple[str, str]]) -> Any:
    return scrub_text(_scrub_credential_value(value), secrets) if isinstance(value, str) else value


def _needs_scrubbing(
    headers: Mapping[str, Any], drop: frozenset[str], secrets: list[tuple[str, str]]
) -> bool:
    # vcrpy's case-insensitive headers list their lower-case names without a lookup per item.
    lower_items = getattr(headers, "lower_items", None)
    items = lower_items() if callable(lower_items) else headers.items()
    texts: list[str] = []
    for name, value in items:
        if name.lower() in drop or is_secret_header(name):
            return True
        if isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
        elif isinstance(value, str):
            texts.append(value)
    if any(map(_is_credential_value, texts)):
        return True
    if not secrets:
        return False
    joined = "\0".join(texts)  # one search per secret; no value holds a NUL to join across
    return scrub_text(joined, secrets) is not joined


def _scrub_json(value: Any) -> Any:
    """``value`` with credential fields replaced; ``value`` itself when nothing is (almost no
    body has a credential field, and every recorded and replayed body comes here): containers
    are copied only from their first change on."""
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for k, v in value.items():
            secret = is_secret_field(str(k)) and isinstance(v, str) and v and v != PLACEHOLDER
            new = PLACEHOLDER if secret else _scrub_json(v)
            if new is not v:
                changed = changed if changed is not None else dict(value)
                changed[k] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items: list[Any] | None = None
        for n, v in enumerate(value):
            new = _scrub_json(v)
            if new is not v:
                items = items if items is not None else list(value)
                items[n] = new
        return value if items is None else items
    if isinstance(value, str) and _is_credential_value(value):
        return _scrub_credential_value(value)
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        # JSON inside a string (leading whitespace too): a tool call's "arguments" carry the
        # tool's own fields.
        try:
            inner = json.loads(value)
        except ValueError:
            return value
        cleaned = _scrub_json(inner)
        return value if cleaned is inner else json.dumps(cleaned, ensure_ascii=False)
    return value


# Bodies that scrub_body gave back unchanged (by digest, so no body is kept alive), with what
# they were checked under. A replayed request is byte for byte one that loading its cassette
# already checked, and parsing and walking a crew's JSON request again was a fifth of the time
# crewguard spends on it. Bounded: forgotten all at once when full (a miss only checks again).
_Checked = tuple[bytes, str, tuple[tuple[str, str], ...]]
_UNCHANGED: dict[_Checked, None] = {}
_UNCHANGED_KEEP = 4096


def _digest(body: bytes | str) -> bytes:
    if isinstance(body, str):
        return hashlib.blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16, person=b"str").digest()
    return hashlib.blake2b(body, digest_size=16, person=b"bytes").digest()


def scrub_body(body: Any, headers: Mapping[str, Any], secrets: list[tuple[str, str]]) -> Any:
    """The body with credential JSON fields and secret values replaced; same type, same encoding."""
    if not isinstance(body, (bytes, str)) or not body:
        return body
    checked = (_digest(body), content_encoding(headers), tuple(secrets))
    if checked in _UNCHANGED:
        return body
    new = _scrubbed(body, headers, secrets)
    if new is body:
        if len(_UNCHANGED) >= _UNCHANGED_KEEP:
            _UNCHANGED.clear()
        _UNCHANGED[checked] = None
    return new


def _scrubbed(body: bytes | str, headers: Mapping[str, Any], secrets: list[tuple[str, str]]) -> Any:
    text, encode = decoded(body.encode("utf-8") if isinstance(body, str) else body, headers)
    new = scrub_text(text, secrets)
    try:
        data = json.loads(new)
    except ValueError:
        kind = content_type(headers)
        if "x-www-form-urlencoded" in kind:
            new = _scrub_pairs(new)  # an OAuth token request: client_secret=..., password=...
        elif "multipart/form-data" in kind:
            new = _FORM_PART.sub(_scrub_form_part, new)
    else:
        cleaned = _scrub_json(data)
        if cleaned is not data:
            new = json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))
    if new == text:
        return body
    return new if isinstance(body, str) else encode(new)


# One part of a multipart/form-data body: its headers (the name in Content-Disposition), a blank
# line, then the value up to the next boundary line. Parsed here because the email parser
# would rebuild the whole body, changing bytes the request was sent and matched with.
_FORM_PART = re.compile(
    r'(?is)(content-disposition:[^\r\n]*?\bname="([^"]*)"[^\r\n]*\r?\n(?:[^\r\n]+\r?\n)*\r?\n)(.*?)(?=\r?\n--)'
)


def _scrub_form_part(part: re.Match[str]) -> str:
    """A credential-named part's value replaced (a client_secret, an api_key field of an upload)."""
    if part.group(3) and part.group(3) != PLACEHOLDER and _is_secret_query(part.group(2)):
        return part.group(1) + PLACEHOLDER
    return part.group(0)


def scrub_request(request: Any, *, headers: bool = True) -> Any:
    """vcrpy ``before_record_request``: applied to recorded and live requests alike, so a
    scrubbed request still matches its recording.

    ``headers=False`` leaves the headers as they are, for a copy that is only compared with the
    recordings by method, URL and body.
    """
    secrets = secret_env_values()
    if headers:
        scrubbed = scrub_headers(request.headers, SECRET_HEADERS, secrets)
        if scrubbed is not request.headers:
            request.headers = scrubbed
    uri = scrub_uri(request.uri, secrets)
    if uri != request.uri:
        request.uri = uri
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
