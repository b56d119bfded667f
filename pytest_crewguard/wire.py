"""What crossed the wire during a test: every HTTP exchange served or recorded by the cassette.

The recorder wraps one vcrpy cassette. Each exchange is kept with the CrewAI event scope that
was active in the thread that sent it, which is how a request is tied to its crew kickoff,
task and agent without depending on timing (CrewAI's event handlers run later, on a pool).
In record mode it also measures each exchange's provider latency and stores it in the
cassette as a response header, which plain vcrpy loads and replays like any other header.
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from .errors import CassetteMiss
from .matching import body_diff, nearest_request
from .usage import Exchange, classify_exchange, header_value

LATENCY_HEADER = "x-crewguard-latency-s"

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
class WireCall:
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

    def scope_id(self, event_type: str) -> str | None:
        """The innermost scope of ``event_type`` (e.g. ``"task_started"``) this call ran in."""
        for event_id, kind in reversed(self.scope):
            if kind == event_type:
                return event_id
        return None


def _body(response: dict[str, Any]) -> Any:
    body = response.get("body") or {}
    return body.get("string") if isinstance(body, dict) else body


class WireRecorder:
    """Wraps a vcrpy cassette to keep every exchange and to turn a miss into a clear failure."""

    def __init__(self, cassette: Any, *, nodeid: str, record_mode: str, cassette_path: str) -> None:
        self.cassette = cassette
        self.nodeid = nodeid
        self.record_mode = record_mode
        self.cassette_path = cassette_path
        self.existed = bool(len(cassette))
        self.calls: list[WireCall] = []
        self.misses: list[str] = []
        self._lock = threading.Lock()
        # Per thread and per asyncio task: concurrent async requests share a thread.
        self._started: contextvars.ContextVar[float | None] = contextvars.ContextVar(
            "crewguard_request_started", default=None
        )
        self._install()

    # vcrpy calls can_play_response_for first for every request, then play_response (replay)
    # or, after the real request, append (record), all in the thread that sent the request.
    def _install(self) -> None:
        cassette = self.cassette
        can_play = cassette.can_play_response_for
        play = cassette.play_response
        append = cassette.append

        def can_play_response_for(request: Any) -> bool:
            self._started.set(time.perf_counter())
            ok = bool(can_play(request))
            if not ok and cassette.write_protected and cassette.filter_request(request):
                self._miss(request)
            return ok

        def play_response(request: Any) -> Any:
            response = play(request)
            latency = header_value(response.get("headers") or {}, LATENCY_HEADER)
            self._keep(request, response, float(latency) if latency else None, replayed=True)
            return response

        def append_(request: Any, response: Any) -> None:
            started = self._started.get()
            latency = time.perf_counter() - started if started is not None else None
            if latency is not None:
                headers = dict(response.get("headers") or {})
                headers[LATENCY_HEADER] = [f"{latency:.3f}"]
                response = {**response, "headers": headers}
            with self._lock:
                before = len(cassette.data)
                append(request, response)
                stored = cassette.data[-1][1] if len(cassette.data) > before else response
            self._keep(request, stored, latency, replayed=False)

        cassette.can_play_response_for = can_play_response_for
        cassette.play_response = play_response
        cassette.append = append_

    def calls_of(self, kickoff_id: str | None) -> list[WireCall]:
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
        with self._lock:
            self.calls.append(
                WireCall(
                    index=len(self.calls),
                    method=request.method,
                    uri=request.uri,
                    request_body=request.body,
                    status=status,
                    response_headers=headers,
                    response_body=_body(response),
                    scope=current_scope(),
                    recorded_latency_s=latency,
                    replayed=replayed,
                    exchange=exchange,
                )
            )

    def _miss(self, request: Any) -> None:
        message = self.miss_message(request)
        with self._lock:
            self.misses.append(message)
        raise CassetteMiss(message)

    def miss_message(self, request: Any) -> str:
        """Why ``request`` has no recorded answer, what changed, and how to record it."""
        lines = [
            f"crewguard: no recorded response for {request.method} {request.uri}",
            f"  test:     {self.nodeid}",
            f"  cassette: {self.cassette_path} (record mode: {self.record_mode})",
        ]
        recorded = [r for r, _ in self.cassette.data]
        if not self.existed:
            lines += [
                "  The cassette does not exist yet, and replay mode never calls the network.",
                "  Record it once (this calls the real provider):",
                f"    pytest '{self.nodeid}' --crewguard-record-mode=once",
            ]
            return "\n".join(lines)
        nearest = nearest_request(request, recorded)
        if nearest is not None:
            position = recorded.index(nearest) + 1
            diff = body_diff(nearest, request)
            if diff.startswith("(bodies are equal"):
                lines.append(
                    f"  The same request was recorded (interaction {position} of {len(recorded)}) "
                    "but this run sent it more often than the recording did."
                )
            else:
                lines.append(
                    f"  Nearest recorded request: interaction {position} of {len(recorded)}; what changed:"
                )
                lines += ["    " + line for line in diff.splitlines()]
        lines += [
            "  If the change is intended, record this test again (this calls the real provider):",
            f"    pytest '{self.nodeid}' --crewguard-record-mode=rewrite",
        ]
        return "\n".join(lines)
