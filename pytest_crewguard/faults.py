"""Provider faults injected in replay: the marker's ``faults=`` argument.

A fault answers an LLM request before its recorded answer is served, with what the provider
itself sends in that case (status, error body, ``retry-after``), so that the SDK takes its
real retry path and the application its real error handling. ``{"429": 2}`` answers the first
two LLM requests with a rate-limit error; the recorded answer is served on the third attempt.

Keys: ``"429"``, ``"500"``, ``"503"``, ``"529"`` (Anthropic's "overloaded"), ``"timeout"``
(a read timeout raised by the HTTP client) with a count each; ``"agent"``, ``"task"``,
``"model"`` limit the faults to the requests of that agent role, task name or model;
``"every": N`` injects the faults before every N-th matching call (the N-th, 2N-th, ...)
instead of once; ``"retry_after": seconds`` sets the header (default 1).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "529", "timeout")
SCOPES: tuple[str, ...] = ("agent", "task", "model")
FAULT_HEADER = "x-crewguard-fault"
EXAMPLE = 'faults={"429": 2} or faults={"agent": "Researcher", "429": 3, "every": 2}'


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, validated: a sequence of fault kinds and where it applies."""

    sequence: tuple[str, ...]
    agent: str | None = None
    task: str | None = None
    model: str | None = None
    every: int | None = None
    retry_after: float = 1.0


def parse_faults(value: Any) -> FaultPlan:
    """The marker's ``faults=`` dict as a :class:`FaultPlan`; a bad one raises ``ConfigError``."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"argument faults={value!r}: {why}; e.g. {EXAMPLE}")

    if not isinstance(value, dict) or not value:
        raise bad("expected a non-empty dict of fault kind to count")
    sequence: list[str] = []
    scopes: dict[str, str] = {}
    every: int | None = None
    retry_after = 1.0
    for key, count in value.items():
        name = str(key)
        if name in FAULT_KINDS:
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
                raise bad(f"the count of {name!r} must be a whole number from 1 to 1000")
            sequence += [name] * count
        elif name in SCOPES:
            if not isinstance(count, str) or not count:
                raise bad(f"{name!r} must be a non-empty {name} name")
            scopes[name] = count
        elif name == "every":
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10**6:
                raise bad("'every' must be a whole number of calls, at least 1")
            every = count
        elif name == "retry_after":
            if isinstance(count, bool) or not isinstance(count, (int, float)) or not 0 <= count <= 60:
                raise bad("'retry_after' must be a number of seconds from 0 to 60")
            retry_after = float(count)
        else:
            raise bad(
                f"unknown key {name!r} (fault kinds: {', '.join(FAULT_KINDS)}; "
                f"scopes: {', '.join(SCOPES)}; also 'every', 'retry_after')"
            )
    if not sequence:
        raise bad(f"no fault to inject: give a count for one of {', '.join(FAULT_KINDS)}")
    if "retry_after" in value and "429" not in sequence:  # it would change nothing
        raise bad("'retry_after' is the Retry-After of 429 answers, and no '429' is injected")
    return FaultPlan(tuple(sequence), every=every, retry_after=retry_after, **scopes)


class ReadTimeoutFault(Exception):
    """Stands for the HTTP client's read timeout when httpx is not loaded."""


class FaultInjector:
    """Decides, request by request, whether the next LLM request gets a fault.

    Without ``every`` the sequence is served once, to the first matching requests (retries
    included: ``{"429": 5}`` is five rate-limit answers in a row). With ``every=N`` the
    sequence is served again before the N-th, 2N-th, ... matching call is answered.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._lock = threading.Lock()
        self._answered = 0  # matching calls served from the recording
        self._armed_for = 0  # the call number the current sequence was armed for
        self._pending: list[str] = []

    def matches(self, model: str | None, who: Callable[[], tuple[str | None, str | None]]) -> bool:
        plan = self.plan
        if plan.model is not None and (model or "").split("/")[-1] != plan.model.split("/")[-1]:
            return False
        if plan.agent is None and plan.task is None:
            return True
        agent, task = who()
        return (plan.agent is None or agent == plan.agent) and (plan.task is None or task == plan.task)

    def next_fault(self) -> str | None:
        """The fault for a matching request about to be answered, or ``None`` to answer it."""
        with self._lock:
            upcoming = self._answered + 1
            due = upcoming % self.plan.every == 0 if self.plan.every else upcoming == 1
            if due and self._armed_for != upcoming:
                self._armed_for = upcoming
                self._pending = list(self.plan.sequence)
            if self._pending:
                return self._pending.pop(0)
            self._answered += 1
            return None


# -- what each provider sends -------------------------------------------------------------------

_OPENAI = {
    "429": (
        "rate_limit_exceeded",
        "requests",
        "Rate limit reached for {model} in organization org-crewguard on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in {retry}s. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
    ),
    "500": (None, "server_error", "The server had an error while processing your request. Sorry about that!"),
    "503": (None, "server_error", "The engine is currently overloaded, please try again later."),
    "529": (None, "server_error", "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC = {
    "429": (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    "500": ("api_error", "Internal server error"),
    "503": ("api_error", "Service unavailable"),
    "529": ("overloaded_error", "Overloaded"),
}
_GOOGLE = {
    "429": ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    "500": (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
    ),
    "503": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    "529": ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}
REASONS = {
    "429": "Too Many Requests",
    "500": "Internal Server Error",
    "503": "Service Unavailable",
    "529": "Overloaded",
}


def fault_response(kind: str, provider: str | None, model: str | None, retry_after: float) -> dict[str, Any]:
    """A vcrpy response dict: the error ``provider`` answers with for fault ``kind``."""
    retry = f"{retry_after:g}"
    headers: dict[str, list[str]] = {"content-type": ["application/json"], FAULT_HEADER: [kind]}
    body: dict[str, Any]
    if provider == "anthropic":
        error_type, message = _ANTHROPIC[kind]
        body = {"type": "error", "error": {"type": error_type, "message": message}}
        headers["request-id"] = ["req_crewguard_fault"]
        if kind == "429":
            headers["retry-after"] = [retry]
            headers["anthropic-ratelimit-requests-remaining"] = ["0"]
    elif provider == "google":
        status, message = _GOOGLE[kind]
        body = {"error": {"code": int(kind), "message": message, "status": status}}
    else:  # OpenAI and the OpenAI-compatible APIs (Azure, OpenRouter, local servers)
        code, error_type, message = _OPENAI[kind]
        body = {
            "error": {
                "message": message.format(model=model or "the model", retry=retry),
                "type": error_type,
                "param": None,
                "code": code,
            }
        }
        headers["x-request-id"] = ["req_crewguard_fault"]
        if kind == "429":
            headers["retry-after"] = [retry]
            headers["x-ratelimit-remaining-requests"] = ["0"]
            headers["x-ratelimit-reset-requests"] = [f"{retry}s"]
    return {
        "status": {"code": int(kind), "message": REASONS[kind]},
        "headers": headers,
        "body": {"string": json.dumps(body).encode()},
    }


def timeout_error() -> BaseException:
    """The HTTP client's own read-timeout exception, which the SDKs retry."""
    import sys

    httpx = sys.modules.get("httpx")
    if httpx is not None:
        return httpx.ReadTimeout("The read operation timed out (crewguard fault)")  # type: ignore[no-any-return]
    return ReadTimeoutFault("The read operation timed out (crewguard fault)")


def fault_kind_label(kind: str) -> str:
    """How a fault is named in messages."""
    return {
        "429": "429 rate limit",
        "500": "500 server error",
        "503": "503 unavailable",
        "529": "529 overloaded",
        "timeout": "read timeout",
    }[kind]
