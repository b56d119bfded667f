"""What crossed the wire during a test: every HTTP exchange served or recorded by the cassette.

The log is fed by one vcrpy cassette. Each exchange is kept with the CrewAI event scope that
was active in the thread that sent it, which is how a request is tied to its crew kickoff,
task and agent without depending on timing (CrewAI's event handlers run later, on a pool).
In record mode it also measures each exchange's provider latency and stores it in the
cassette as a response header, which plain vcrpy loads and replays like any other header.
"""

from __future__ import annotations

import contextvars
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .fault_log import FaultLog
from .faults import FaultInjector, fault_response, timeout_error
from .match_config import MatchConfig
from .miss_message import miss_message
from .recorded_latency import LATENCY_HEADER, latency_seconds
from .scrubbing import scrub_uri
from .secret_refusal import masked_text
from .secret_values import secrets_so_far
from .stand_ins import stand_in_kind, stand_in_response
from .usage import Exchange, classify_exchange, header_value

Scope = tuple[tuple[str, str], ...]


def current_scope() -> Scope:
    """The CrewAI event scope stack of the calling thread, or ``()`` outside any crew.

    CrewAI keeps it in a context variable that follows the LLM call into its worker threads;
    it is private, so it is read defensively and only once crewai is already imported.
    """
    module = sys.modules.get("crewai.events.event_context")
    stack = getattr(module, "_event_id_stack", None)
    if stack is None:
        return ()
    try:
        return tuple(stack.get())
    except Exception:  # pragma: no cover - a future CrewAI may change the private layout
        return ()


@dataclass(frozen=True)
class HttpExchange:
    """One HTTP exchange of the test, replayed or recorded."""

    index: int
    method: str
    uri: str
    request_body: Any
    status: int
    response_headers: dict[str, Any]
    response_body: Any
    scope: Scope
    recorded_latency_s: float | None
    replayed: bool
    exchange: Exchange
    faults: tuple[str, ...] = ()  # fault answers this call met before its answer (replay)
    waited_s: float = 0.0  # virtual seconds waited before its answer (backoff, max_rpm)

    @cached_property
    def request_model(self) -> str | None:
        """The model the request asked for (the answer may name a version)."""
        return requested_model(self.method, self.uri, self.request_body)

    def scope_id(self, event_type: str) -> str | None:
        """The innermost scope of ``event_type`` (e.g. ``"task_started"``) this call ran in."""
        for event_id, kind in reversed(self.scope):
            if kind == event_type:
                return event_id
        return None


def requested_model(method: str, uri: str, request_body: Any) -> str | None:
    """The model a request asks for, from its URL or body."""
    return classify_exchange(method, uri, request_body, 0, {}, None).model


def _body(response: dict[str, Any]) -> Any:
    body = response.get("body") or {}
    return body.get("string") if isinstance(body, dict) else body


def _error_text(response: dict[str, Any]) -> str:
    """The provider's own error message, from the usual JSON shapes, else the body's start."""
    raw = _body(response)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])[:300]
    return text.strip()[:300]


class WireLog:
    """Every exchange of one test's cassette, and what replay had to answer without it.

    :class:`~pytest_crewguard.guarded_cassette.GuardedCassette` calls it from the thread that
    sent each request: :meth:`request_started` first, then :meth:`replayed`, :meth:`stand_in`
    or, when recording, :meth:`recorded_response` and :meth:`recorded`.
    """

    def __init__(
        self,
        cassette: Any,
        *,
        nodeid: str,
        record_mode: str,
        cassette_path: str,
        cassette_exists: bool,
        match_config: MatchConfig | None = None,
        keep_errors: bool = False,
        shared: bool = False,
    ) -> None:
        self.cassette = cassette
        self.nodeid = nodeid
        self.record_mode = record_mode
        self.cassette_path = cassette_path
        self.cassette_exists = cassette_exists
        self.existed = bool(len(cassette))
        self.match_config = match_config or MatchConfig()
        self.keep_errors = keep_errors
        self.shared = shared  # the marker named the cassette: other tests may record into it too
        self.calls: list[HttpExchange] = []
        self.misses: list[str] = []
        self.recorded_lines: dict[int, list[str]] = {}  # by id: miss_message's cache
        self.unrecorded_preflights = 0
        self.refused_errors: list[tuple[Any, int, str]] = []  # (request, status, message)
        self.fault_log = FaultLog()
        self.injector: FaultInjector | None = None  # set by the guard for a faults= test
        self.who: Callable[[Scope], tuple[str | None, str | None]] = lambda scope: (None, None)
        self._lock = threading.Lock()
        # Per thread and per asyncio task: concurrent async requests share a thread.
        self._started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
            "crewguard_request_started", default=None
        )

    # -- called by the cassette ---------------------------------------------------------------

    def request_started(self) -> None:
        self._started.set(time.perf_counter())

    def replayed(self, request: Any, response: dict[str, Any]) -> None:
        latency = latency_seconds(header_value(response.get("headers") or {}, LATENCY_HEADER))
        self._keep(request, response, latency, replayed=True)

    def fault_for(self, request: Any) -> dict[str, Any] | None:
        """A provider fault to answer ``request`` with before its recording (``faults=``).

        A read timeout is raised, as the HTTP client would raise it.
        """
        injector = self.injector
        if injector is None:
            return None
        exchange = classify_exchange(request.method, request.uri, request.body, 0, {}, None)
        if exchange.kind != "llm":
            return None
        scope = current_scope()
        if not injector.matches(exchange.model, lambda: self.who(scope)):
            return None
        kind = injector.next_fault()
        if kind is None:
            return None
        with self._lock:
            position = len(self.calls)
        self.fault_log.fault(kind, exchange.model, scope, position)
        if kind == "timeout":
            raise timeout_error()
        return fault_response(kind, exchange.provider, exchange.model, injector.plan.retry_after)

    def waited(self, seconds: float, kind: str) -> None:
        """A virtual wait of the sending thread (see :mod:`.virtual_clock`)."""
        self.fault_log.waited(seconds, kind, current_scope())

    def stand_in(self, request: Any) -> dict[str, Any]:
        """Answer a request the recording does not hold (see :mod:`.stand_ins`)."""
        kind = stand_in_kind(request.method, request.uri)
        if kind == "preflight":
            with self._lock:
                self.unrecorded_preflights += 1
        elif kind == "miss":
            # Printed and written into JUnit XML: also what the test sent by name, if it still shows.
            message = masked_text(miss_message(self, request), secrets_so_far())
            with self._lock:
                self.misses.append(message)
        return stand_in_response(kind, self.cassette_path)

    def recorded_response(self, request: Any, response: dict[str, Any]) -> dict[str, Any] | None:
        """The response to store for a request sent to the provider; ``None`` refuses it.

        An LLM call the provider answered with an error (a wrong URL or key, an outage) is not
        stored: replaying it would pass the error off as the crew's behaviour.
        """
        status = int((response.get("status") or {}).get("code", 0))
        if status >= 400 and not self.keep_errors:
            kind = classify_exchange(request.method, request.uri, request.body, status, {}, None).kind
            if kind == "llm":
                with self._lock:
                    self.refused_errors.append((request, status, _error_text(response)))
                return None
        started = self._started.get()
        if started is None:
            return response
        headers = dict(response.get("headers") or {})
        headers[LATENCY_HEADER] = [f"{time.perf_counter() - started:.3f}"]
        return {**response, "headers": headers}

    def recorded(self, request: Any, stored: dict[str, Any]) -> None:
        latency = latency_seconds(header_value(stored.get("headers") or {}, LATENCY_HEADER))
        self._keep(request, stored, latency, replayed=False)

    # -- read by the guard ----------------------------------------------------------------------

    def error_answers(self) -> list[str]:
        """Error answers that were not stored and that no later answer to the same request made
        good (a 429 the SDK retried successfully is not a problem)."""
        problems = []
        with self._lock:
            refused = list(self.refused_errors)
            answered = [(w.method, w.uri, w.request_body) for w in self.calls if w.status < 400]
        for request, status, text in refused:
            if (request.method, request.uri, request.body) in answered:
                continue
            # Printed and written into JUnit XML: the request as sent, before any scrubbing.
            uri, text = scrub_uri(request.uri), masked_text(text)
            problems.append(
                f"crewguard: the provider answered {request.method} {uri} with HTTP {status}"
                f"{': ' + text if text else ''}\n"
                f"  test:     {self.nodeid}\n"
                f"  An error answer is not a recording of the crew, so {self.cassette_path} was not "
                "written; fix the cause (key, URL, model name, provider status) and record again.\n"
                "  To record error answers on purpose (a fault test), pass record_errors=True to the marker."
            )
        return problems

    def llm_answers(self) -> list[HttpExchange]:
        """The LLM exchanges answered without an error, in the order they were logged."""
        with self._lock:
            return [w for w in self.calls if w.status < 400 and w.exchange.kind == "llm"]

    def calls_of(self, kickoff_id: str | None) -> list[HttpExchange]:
        """The exchanges sent inside the crew kickoff ``kickoff_id``."""
        if kickoff_id is None:
            return []
        with self._lock:
            calls = list(self.calls)
        return [w for w in calls if w.scope_id("crew_kickoff_started") == kickoff_id]

    def _keep(self, request: Any, response: dict[str, Any], latency: float | None, *, replayed: bool) -> None:
        status = int((response.get("status") or {}).get("code", 0))
        headers = response.get("headers") or {}
        exchange = classify_exchange(
            request.method, request.uri, request.body, status, headers, _body(response)
        )
        scope = current_scope()
        faults: tuple[str, ...] = ()
        waited = 0.0
        if exchange.kind == "llm" and self.fault_log.pending():  # parsing the request costs
            asked = requested_model(request.method, request.uri, request.body)
            faults, waited = self.fault_log.take(scope, asked)
        with self._lock:
            self.calls.append(
                HttpExchange(
                    index=len(self.calls),
                    method=request.method,
                    uri=request.uri,
                    request_body=request.body,
                    status=status,
                    response_headers=headers,
                    response_body=_body(response),
                    scope=scope,
                    recorded_latency_s=latency,
                    replayed=replayed,
                    exchange=exchange,
                    faults=faults,
                    waited_s=waited,
                )
            )
