"""Keeping secrets out of cassettes: what is scrubbed on record, and what refuses a write."""

from __future__ import annotations

import os
import re
from typing import Any

from .errors import CassetteError

# Request headers that carry credentials or account identity. Compared lower-case.
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
# Response headers that identify the account or carry session cookies.
SECRET_RESPONSE_HEADERS: frozenset[str] = frozenset(
    {"set-cookie", "openai-organization", "openai-project", "anthropic-organization-id"}
)
SECRET_QUERY_PARAMETERS: tuple[str, ...] = ("key", "api_key", "apikey", "api-key", "access_token")

# Shapes of provider keys: OpenAI (sk-, sk-proj-), Anthropic (sk-ant-), Google (AIza), AWS (AKIA).
KEY_SHAPED = re.compile(
    r"sk-(?:proj-|ant-[a-z0-9]+-|ant-)?[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{35}|AKIA[0-9A-Z]{16}"
)
# Environment variables whose values must never be written, whatever their shape.
SECRET_ENV_VARIABLES: tuple[str, ...] = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AZURE_API_KEY",
    "AZURE_OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
)


def scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """Drop account-identifying response headers before a response is recorded."""
    headers = response.get("headers") or {}
    response["headers"] = {
        name: value for name, value in headers.items() if name.lower() not in SECRET_RESPONSE_HEADERS
    }
    return response


def _mask(secret: str) -> str:
    return f"{secret[:6]}…{secret[-4:]}" if len(secret) > 12 else "…"


def find_secret(text: str) -> tuple[str, int] | None:
    """The first key-shaped string or known secret value in ``text`` (masked) and its offset."""
    for name in SECRET_ENV_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= 8 and value in text:
            return f"the value of ${name} ({_mask(value)})", text.index(value)
    match = KEY_SHAPED.search(text)
    if match:
        return f"a key-shaped string ({_mask(match.group(0))})", match.start()
    return None


def refuse_secrets(path: str, serialized: str) -> None:
    """Raise when a serialized cassette still holds a secret: it must not reach the disk."""
    found = find_secret(serialized)
    if found is None:
        return
    what, offset = found
    line = serialized.count("\n", 0, offset) + 1
    raise CassetteError(
        f"crewguard refused to write cassette {path}: it contains {what} at line {line}. "
        "Credentials in headers and key= query parameters are scrubbed automatically; this one "
        "is in a body or an unusual header. Remove it from the request (use an environment "
        "variable the SDK reads), then record again. Nothing was written."
    )
