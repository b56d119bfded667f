"""Credential fields of JSON bodies, at any depth (``api_key``, ``clientSecret``, a tool
call's arguments held as JSON in a string), replaced whatever the value looks like."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from .secret_values import PLACEHOLDER, remember

# JSON fields, compared without case, '-' or '_': "api_key", "apiKey", "client_secret"...
# A bare "token" or "key" is not one (logprobs carry {"token": "Hello"}).
_FIELD_SUFFIXES = (
    "apikey", "accesstoken", "refreshtoken", "authtoken", "sessiontoken", "idtoken", "apitoken",
    "bearertoken", "secret", "password", "passwd", "secretkey", "privatekey", "accesskey",
    "subscriptionkey", "authorization",
)


@lru_cache(maxsize=4096)
def is_secret_field(name: str) -> bool:
    """A JSON field (any depth) whose value is a credential, e.g. ``api_key``, ``clientSecret``."""
    flat = re.sub(r"[^a-z0-9]", "", name.lower())
    return flat.endswith(_FIELD_SUFFIXES)


# Keys of an object that holds a credential field's value (``{"password": {"value": ...}}``);
# other keys describe it (a JSON Schema's "type" and "description"), which a replay must keep.
_VALUE_KEYS = frozenset({"value", "values", "secret", "key", "token", "password", "credential"})


def _every_string_scrubbed(value: Any) -> Any:
    """A credential field's value with the strings that hold the credential replaced: itself, a
    list's items (``{"api_key": ["..."]}``), an object's value (``{"value": "..."}``)."""
    if isinstance(value, str):
        if value and value != PLACEHOLDER:
            remember(value)
            return PLACEHOLDER
        return value
    if isinstance(value, list):
        items = [_every_string_scrubbed(item) for item in value]
        return value if all(new is old for new, old in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        changed = {}
        for k, v in value.items():
            new = _every_string_scrubbed(v) if str(k).lower() in _VALUE_KEYS else scrub_json(v)
            if new is not v:
                changed[k] = new
        return {**value, **changed} if changed else value
    return value


def scrub_json(value: Any) -> Any:
    """``value`` with credential fields replaced; ``value`` itself when nothing is (almost no
    body has a credential field, and every recorded and replayed body comes here): containers
    are copied only from their first change on."""
    if isinstance(value, dict):
        changed: dict[Any, Any] | None = None
        for k, v in value.items():
            new = _every_string_scrubbed(v) if is_secret_field(str(k)) else scrub_json(v)
            if new is not v:
                changed = changed if changed is not None else dict(value)
                changed[k] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items: list[Any] | None = None
        for n, v in enumerate(value):
            new = scrub_json(v)
            if new is not v:
                items = items if items is not None else list(value)
                items[n] = new
        return value if items is None else items
    if isinstance(value, str):
        if value.lstrip()[:1] in ("{", "["):
            # JSON inside a string (leading whitespace too): a tool call's "arguments" carry the
            # tool's own fields.
            try:
                inner = json.loads(value)
            except (ValueError, RecursionError):
                return _members_scrubbed(value)
            cleaned = scrub_json(inner)
            return value if cleaned is inner else json.dumps(cleaned, ensure_ascii=False)
        return _members_scrubbed(value)
    return value


def _members_scrubbed(text: str) -> str:
    """A string that is no JSON but may quote some: a tool's dict as Python prints it
    (``{'password': '...'}``) or JSON after other text (``Result: {"api_key": "..."}``), as
    the tool's result reaches the next prompt. Its credential members' values replaced."""
    new = text
    if "':" in new or "' :" in new:
        new = _PYTHON_MEMBER.sub(_scrub_python_member, new)
    if '":' in new or '" :' in new:
        new = scrub_as_text(new)
    return text if new == text else new


# ``'name': 'value'`` as Python's repr of a dict writes it (possessive, as _STRING_MEMBER).
_PYTHON_MEMBER = re.compile(r"'((?:[^'\\]|\\.)*+)'(\s*:\s*)'((?:[^'\\]|\\.)*+)'")


def _scrub_python_member(member: re.Match[str]) -> str:
    name, separator, value = member.groups()
    if not is_secret_field(name) or not value or value == PLACEHOLDER:
        return member.group(0)
    remember(value)
    return f"'{name}'{separator}'{PLACEHOLDER}'"


# A JSON string, whole (escapes kept, possessive: never tried again from a quote inside it),
# with the string value after it when it is a member's name: ``"name": "value"``.
_STRING_MEMBER = re.compile(r'"((?:[^"\\]|\\.)*+)(?:"(?:(\s*:\s*)"((?:[^"\\]|\\.)*+)")?|\\?\Z)')


def _scrub_member(member: re.Match[str]) -> str:
    name, value = member.group(1), member.group(3)
    if member.group(2) is None or not is_secret_field(name) or not value or value == PLACEHOLDER:
        return member.group(0)
    remember(value)
    return f'"{name}"{member.group(2)}"{PLACEHOLDER}"'


def scrub_as_text(text: str) -> str:
    """JSON nested deeper than the parser goes: its string members named like a credential
    replaced where they stand (linear, no parsing)."""
    return _STRING_MEMBER.sub(_scrub_member, text)
