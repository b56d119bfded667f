"""Keeping secrets out of cassettes: what is scrubbed on record, and what refuses a write.

Scrubbed (the value replaced by ``PLACEHOLDER``, so recording goes on): credential-named
headers, query parameters and form fields (:mod:`.credential_names`) and JSON fields, whatever
the value looks like, and the value of every credential-named environment variable wherever it
appears. Bodies are scrubbed and scanned in decoded form: compressed bodies are decompressed,
bodies that are not UTF-8 are read byte for byte. What is still there afterwards is for
:mod:`.secret_refusal` to find. JSON fields are :mod:`.json_fields`' to find, credentials
known by their form in headers :mod:`.credential_forms`', credential fields of uploads
:mod:`.multipart`'s.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from . import multipart
from .body_codec import content_encoding, content_type, decoded
from .credential_forms import CHALLENGE_HEADERS, scrub_credential_value
from .credential_names import SECRET_HEADERS, is_secret_header, is_secret_parameter
from .json_fields import scrub_as_text, scrub_json
from .secret_values import PLACEHOLDER, remember, secret_env_values, secret_forms, secrets_so_far, sending

# Response headers that identify the account or carry session cookies: dropped.
SECRET_RESPONSE_HEADERS: frozenset[str] = frozenset(
    {"set-cookie", "openai-organization", "openai-project", "anthropic-organization-id"}
)


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
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if password:  # https://user:password@host
            remember(unquote(password))
            netloc = f"{user}:{PLACEHOLDER}@{host}"
        else:  # https://ghp_token@host, https://rk_live_key:@host: the user is the credential
            remember(unquote(user))
            netloc = f"{PLACEHOLDER}{colon}@{host}"
        if netloc != parts.netloc:
            parts = parts._replace(netloc=netloc)
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
    if not any(is_secret_parameter(name) for name, _ in pairs):
        return encoded
    for name, value in pairs:
        if is_secret_parameter(name):
            remember(value)
    return urlencode([(n, PLACEHOLDER if is_secret_parameter(n) else v) for n, v in pairs])


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
        secret = name.lower() in drop or is_secret_header(name)
        if secret:  # Authorization, x-api-key...: an error answer may quote what they held
            _remember_values(value)
        if name.lower() in drop:
            continue
        by_form = name.lower() not in CHALLENGE_HEADERS
        if secret:
            value = [PLACEHOLDER] * len(value) if isinstance(value, (list, tuple)) else PLACEHOLDER
        elif isinstance(value, (list, tuple)):
            value = [_scrub_header_value(v, secrets, by_form) for v in value]
        else:
            value = _scrub_header_value(value, secrets, by_form)
        scrubbed[name] = value
    return scrubbed


def _scrub_header_value(value: Any, secrets: list[tuple[str, str]], by_form: bool) -> Any:
    # Clients may keep header values as bytes (requests does when given bytes): read as Latin-1,
    # as HTTP sends them, and written back the same way.
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not isinstance(text, str):
        return value
    new = scrub_text(scrub_credential_value(text) if by_form else text, secrets)
    if new == text:
        return value
    return new.encode("latin-1", "replace") if isinstance(value, bytes) else new


def _header_texts(value: Any) -> list[str]:
    values = value if isinstance(value, (list, tuple)) else [value]
    return [v.decode("latin-1") if isinstance(v, bytes) else v for v in values if isinstance(v, (str, bytes))]


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
        found = _header_texts(value)
        if name.lower() not in CHALLENGE_HEADERS and any(scrub_credential_value(t) is not t for t in found):
            return True
        texts.extend(found)
    if not secrets:
        return False
    joined = "\0".join(texts)  # one search per secret; no value holds a NUL to join across
    return scrub_text(joined, secrets) is not joined


# Bodies that scrub_body gave back unchanged (by digest, so no body is kept alive), with what
# they were checked under. A replayed request is byte for byte one that loading its cassette
# already checked, and parsing and walking a crew's JSON request again was a fifth of the time
# crewguard spends on it. Bounded: forgotten all at once when full (a miss only checks again).
_Checked = tuple[bytes, str, str, tuple[tuple[str, str], ...]]
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
    # The content type too: the same bytes are a form to scrub as form-encoded, not as text.
    checked = (_digest(body), content_encoding(headers), content_type(headers), tuple(secrets))
    if checked in _UNCHANGED:
        return body
    new = _scrubbed(body, headers, secrets)
    if new is body:
        if len(_UNCHANGED) >= _UNCHANGED_KEEP:
            _UNCHANGED.clear()
        _UNCHANGED[checked] = None
    return new


def _scrubbed(body: bytes | str, headers: Mapping[str, Any], secrets: list[tuple[str, str]]) -> Any:
    text, encode = decoded(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body, headers)
    new = scrub_text(text, secrets)
    bom = "\ufeff" if new.startswith("\ufeff") else ""  # json.loads refuses a leading BOM
    cleaned: Any = None
    try:
        data = json.loads(new[len(bom) :])
        cleaned = scrub_json(data)
    except RecursionError:  # JSON nested deeper than can be walked: its string fields, as text
        new = scrub_as_text(new)
    except ValueError:  # not JSON
        kind = content_type(headers)
        if "x-www-form-urlencoded" in kind or (not kind and _FORM.fullmatch(new)):
            new = _scrub_pairs(new)  # an OAuth token request: client_secret=..., password=...
        elif "multipart/" in kind:  # an upload with a credential field
            boundary = multipart.boundary_of(content_type(headers, as_sent=True))
            new = multipart.scrub_fields(new, boundary, is_secret_parameter) if boundary else new
        elif "event-stream" in kind or "ndjson" in kind or "jsonl" in kind:
            new = scrub_as_text(new)  # JSON chunks (an MCP server's answer): their members
    else:
        if cleaned is not data:
            new = bom + json.dumps(cleaned, ensure_ascii=False, separators=(",", ":"))
    if new == text:
        return body
    if isinstance(body, str):
        return new
    try:
        return encode(new)
    except UnicodeEncodeError:  # a body read as Latin-1 whose JSON now holds other characters
        if cleaned is None:
            raise
        return encode(bom + json.dumps(cleaned, ensure_ascii=True, separators=(",", ":")))


# A body sent without a content type that reads as a form (``requests.post(url, data="a=1&b=2")``).
_FORM = re.compile(r"[\w.~%+\-]+=[^&=\s]*(?:&[\w.~%+\-]+=[^&=\s]*)*")


def scrub_request(request: Any, *, headers: bool = True) -> Any:
    """vcrpy ``before_record_request``: applied to recorded and live requests alike, so a
    scrubbed request still matches its recording.

    ``headers=False`` leaves the headers as they are, for a copy that is only compared with the
    recordings by method, URL and body.
    """
    with sending():
        return _scrub_sent(request, headers)


def _scrub_sent(request: Any, headers: bool) -> Any:
    secrets = secret_env_values()
    if headers:
        scrubbed = scrub_headers(request.headers, SECRET_HEADERS, secrets)
        if scrubbed is not request.headers:
            request.headers = scrubbed
    else:  # learned as when recording, or a key the tool sent in a header misses in replay
        _remember_credential_headers(request.headers)
    uri = scrub_uri(request.uri, secrets_so_far())
    if uri != request.uri:
        request.uri = uri
    body = request.body_bytes if hasattr(request, "body_bytes") else request.body
    # With what the test sent by name so far, headers and URL included: recorded and replayed
    # alike, request by request, so a request scrubbed when recorded is scrubbed when replayed.
    cleaned = scrub_body(body, request.headers, secrets_so_far())
    if cleaned is not body:
        request.body = cleaned
    return request


def _remember_credential_headers(headers: Mapping[str, Any]) -> None:
    for name, value in headers.items():
        if is_secret_header(name):
            _remember_values(value)


def _remember_values(value: Any) -> None:
    for sent in value if isinstance(value, (list, tuple)) else [value]:
        remember(sent)


def scrub_response(response: dict[str, Any], secrets: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """vcrpy ``before_record_response``: credential headers and secret values out of a response,
    and the credentials the test's client sent so far (an echoing server, an error quoting the
    key). ``secrets``: those to use instead."""
    secrets = secrets_so_far() if secrets is None else secrets
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
        # The environment's only: what the test sent by name was applied when each answer was
        # recorded, in order; applied again to earlier answers it would change what replay
        # hands the application, and so its later requests.
        scrub_response(interaction["response"], secrets)
    return interaction
