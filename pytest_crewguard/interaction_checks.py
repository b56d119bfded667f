"""What makes a cassette interaction one vcrpy and the HTTP clients can play: its request and
response fields, an HTTP status, a URL, header values of the kinds the stubs take, a recorded
latency that is one. Checked when a cassette loads, so a bad interaction is named there rather
than failing inside an HTTP client (where an SDK takes it for a connection error and retries).
"""

from __future__ import annotations

import reprlib
from typing import Any
from urllib.parse import urlsplit

from .recorded_latency import LATENCY_HEADER, MAX_LATENCY_S, latency_seconds


def _a(value: Any) -> str:
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _mapping_problem(part: str, value: Any, fields: dict[str, tuple[type, ...]]) -> str | None:
    if value is None:
        return f"has no {part}"
    if not isinstance(value, dict):
        return f"has a {part} that is {_a(value)}, not a mapping"
    for field, types in fields.items():
        if field not in value:
            return f"has no {part} {field}"
        if not isinstance(value[field], types):
            expected = "a mapping" if dict in types else "a string"
            return f"has a {part} field '{field}' that is {_a(value[field])}, not {expected}"
    return None


_REQUEST_FIELDS: dict[str, tuple[type, ...]] = {
    "method": (str,), "uri": (str,), "body": (str, bytes, type(None)), "headers": (dict,),
}
_RESPONSE_FIELDS: dict[str, tuple[type, ...]] = {"status": (dict,), "headers": (dict,), "body": (dict,)}


def interaction_problem(interaction: Any) -> str | None:
    """What is wrong with one cassette interaction, e.g. ``has no response status``."""
    if not isinstance(interaction, dict):
        return f"is not a mapping with request and response ({type(interaction).__name__})"
    problem = _mapping_problem("request", interaction.get("request"), _REQUEST_FIELDS)
    problem = problem or _mapping_problem("response", interaction.get("response"), _RESPONSE_FIELDS)
    if problem:
        return problem
    response = interaction["response"]
    status = response["status"]
    if not isinstance(status.get("code"), int) or isinstance(status.get("code"), bool):
        return f"has a response status without a numeric code ({status!r})"
    if not 100 <= status["code"] <= 599:
        return f"has a response status code {status['code']}, not an HTTP status (100 to 599)"
    if not isinstance(status.get("message"), str):
        return "has a response status without a message"
    if "string" not in response["body"] or not isinstance(response["body"]["string"], (str, bytes)):
        return "has a response body without a string"
    try:  # vcrpy parses it (port included) for every request it compares
        urlsplit(interaction["request"]["uri"]).port  # noqa: B018
    except ValueError as err:
        return f"has a request uri that is not a URL ({err}: {interaction['request']['uri'][:100]!r})"
    request_headers = interaction["request"]["headers"]
    return (
        _headers_problem("request", request_headers, _REQUEST_HEADER)
        or _headers_problem("response", response["headers"], _RESPONSE_HEADER)
        or _latency_problem(response["headers"])
    )


def _latency_problem(headers: dict[str, list[str]]) -> str | None:
    for name, values in headers.items():
        if name.lower() == LATENCY_HEADER and values and latency_seconds(values[0]) is None:
            return (
                f"has a response header '{name}' of {values[0]!r}, not a latency in seconds "
                f"(a number from 0 to {MAX_LATENCY_S:.0f})"
            )
    return None


# What vcrpy's stubs accept as header values: a request's may be one value (vcrpy keeps the
# first of a list), bytes included; a response's are always a list, each value written out as
# text. Anything else fails inside the HTTP client when the answer is played, where the SDK
# takes it for a connection error and retries: the test would then fail on a later request.
# A short repr: a value built from YAML aliases can be nested a billion items deep.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxstring, _SHORT.maxother = 2, 3, 40, 40
_HeaderRule = tuple[tuple[type, ...], bool, str]  # value types, one value allowed, what to say
_REQUEST_HEADER: _HeaderRule = ((str, bytes), True, "a string or a non-empty list of strings")
_RESPONSE_HEADER: _HeaderRule = ((str,), False, "a list of strings")


def _headers_problem(side: str, headers: dict[Any, Any], rule: _HeaderRule) -> str | None:
    types, single_allowed, expected = rule
    for name, value in headers.items():
        if not isinstance(name, str):
            return f"has a {side} header name that is {_a(name)} ({name!r}), not a string"
        values = [value] if single_allowed and isinstance(value, types) else value
        empty = single_allowed and values == []  # vcrpy keeps a request header's first value
        if not isinstance(values, list) or empty or not all(isinstance(v, types) for v in values):
            shown = f"a list holding {_SHORT.repr(value)}" if isinstance(value, list) else _a(value)
            return f"has a {side} header '{name}' that is {shown}, not {expected}"
    return None
