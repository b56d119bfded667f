"""Refusing a cassette write that still holds a secret after scrubbing.

:mod:`.scrubbing` replaces what it recognises (credential headers, query parameters and JSON
fields, the values of credential environment variables). A key-shaped string or a secret value
still in the file's text, or in any body once decoded, stops the write with a message that
names where it is, masked.
"""

from __future__ import annotations

import re
from typing import Any

from .body_codec import interaction_bodies, unreadable_bodies
from .errors import CassetteError
from .scrubbing import scrub_text
from .secret_values import MIN_SECRET_LENGTH, secret_env_values, secret_forms
from .usage.decoding import parse_json, sse_events

# Shapes of provider keys: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), Google (AIza), AWS (AKIA).
# Not inside a longer word: "risk-assessment-calculator" holds "sk-" but is no key.
KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9_-])"
    r"(?:sk-(?:proj-|ant-[a-z0-9]+-|ant-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|AKIA[0-9A-Z]{16})"
)


def mask(secret: str) -> str:
    """At most the first 4 characters of a secret, enough to tell which key it is."""
    return f"{secret[:4]}…" if len(secret) >= MIN_SECRET_LENGTH else "…"


def find_secret(text: str) -> tuple[str, int] | None:
    """The first key-shaped string or known secret value in ``text`` (masked) and its offset."""
    for name, value in secret_env_values():
        for form in secret_forms(value):  # as is, URL-encoded, escaped in a JSON string
            if form in text:
                return f"the value of ${name} ({mask(value)})", text.index(form)
    match = KEY_SHAPED.search(text)
    if match:
        return f"a key-shaped string ({mask(match.group(0))})", match.start()
    return None


def refuse_secrets(path: str, serialized: str, interactions: list[Any] | None = None) -> None:
    """Raise when a cassette still holds a secret, in its text or in any decoded body, or a
    body it cannot read to know."""
    unreadable = next(unreadable_bodies(interactions or []), None)
    if unreadable is not None:
        place, encoding = unreadable
        raise CassetteError(
            f"crewguard refused to write cassette {path}: {place} is compressed as {encoding!r}, "
            "which crewguard cannot read, so it cannot scrub secrets from it nor read its usage. "
            "The client asked for it because brotli or zstandard is installed: record where it is "
            "not, or have the client send 'Accept-Encoding: gzip'. Nothing was written."
        )
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
            joined = _stream_text(text)
            found = find_secret(joined) if joined else None
            if found is not None:  # split across chunks: no one chunk holds it to scrub
                what, where = found[0], f"in {place}, split across the stream's chunks"
                break
    if found is None:
        return
    raise CassetteError(
        f"crewguard refused to write cassette {path}: it contains {what} {where}. "
        "Credential headers, query parameters and JSON fields, and the values of credential "
        "environment variables, are scrubbed automatically; this one is elsewhere (prompt text, "
        "a tool result, the model's answer). Remove it from the request (use an environment "
        "variable the SDK reads), then record again. Nothing was written."
    )


# Where the providers' stream chunks carry the model's text (OpenAI delta content and tool
# arguments, its Responses API's deltas, Anthropic text and partial JSON, Gemini parts' text).
_TEXT_KEYS = frozenset({"content", "text", "arguments", "partial_json", "thinking", "refusal", "delta"})


def _stream_text(text: str) -> str:
    """A stream's text as the client puts it together: the text fields of its JSON chunks, in
    order, joined (a model streams a few characters per chunk). Server-sent events, or JSON
    lines (Ollama's streams)."""
    if "data:" in text:
        chunks: list[Any] = list(sse_events(text))
    elif text.count("\n") > 1 and text.lstrip().startswith("{"):
        chunks = [parse_json(line) for line in text.splitlines()]
    else:
        return ""
    pieces: list[str] = []
    for chunk in chunks:
        _texts(chunk, pieces, False)
    return "".join(pieces)


def _texts(value: Any, into: list[str], wanted: bool) -> None:
    if isinstance(value, str):
        if wanted:
            into.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _texts(item, into, key in _TEXT_KEYS)
    elif isinstance(value, list):
        for item in value:
            _texts(item, into, wanted)


def masked_text(text: str, secrets: list[tuple[str, str]] | None = None) -> str:
    """``text`` for a message or a report: secret values (the environment's, or ``secrets``)
    replaced, key-shaped strings masked (a provider's error text often quotes the key it refused)."""
    secrets = secret_env_values() if secrets is None else secrets
    return KEY_SHAPED.sub(lambda match: mask(match.group(0)), scrub_text(text, secrets))
