"""The answers crewguard gives in replay to requests the cassette does not hold.

In replay nothing may reach the network, yet the application must see what it would see in
production when a request fails, so that its own error handling runs: CrewAI's token-count
fallback, an ``async_execution`` task's future, a streaming thread, the application's
``except Exception``. An exception raised from inside the HTTP client would do that, but every
provider SDK retries connection errors with backoff (seconds per request, then CrewAI retries
the agent). So a miss is answered with an HTTP error the SDKs raise at once as an ordinary
``Exception`` and never retry: status 400 with ``x-should-retry: false`` (honoured by the
OpenAI and Anthropic SDKs; Azure, Bedrock and Gemini do not retry a 400 anyway). crewguard
itself records the miss and fails the test with its full message, whatever the application
did with the error.

Two kinds of requests are not misses: token-count preflights (CrewAI estimates the count
itself when the endpoint fails, so an old cassette without them still replays) and telemetry
or tracing exports (never part of what a test checks).
"""

from __future__ import annotations

import json
from typing import Any, Literal
from urllib.parse import urlsplit

from .usage import classify_exchange

StandIn = Literal["miss", "preflight", "telemetry"]

# CrewAI's telemetry and tracing backends; OTLP exporters post to these paths on any host.
TELEMETRY_HOSTS: tuple[str, ...] = ("telemetry.crewai.com", "app.crewai.com")
TELEMETRY_PATHS: tuple[str, ...] = ("/v1/traces", "/v1/metrics", "/v1/logs")

MISS_HEADER = "x-crewguard-stand-in"


def is_telemetry(uri: str) -> bool:
    """Whether ``uri`` is a telemetry or tracing export, never an answer a test depends on."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    return host in TELEMETRY_HOSTS or host.endswith(".crewai.com") or parts.path.endswith(TELEMETRY_PATHS)


def stand_in_kind(method: str, uri: str) -> StandIn:
    """What an unrecorded request is: a telemetry export, a token-count preflight, or a miss."""
    if is_telemetry(uri):
        return "telemetry"
    if classify_exchange(method, uri, None, 0, {}, None).kind == "preflight":
        return "preflight"
    return "miss"


def _response(status: int, reason: str, body: Any, kind: StandIn) -> dict[str, Any]:
    return {
        "status": {"code": status, "message": reason},
        "headers": {
            "content-type": ["application/json"],
            "x-should-retry": ["false"],
            MISS_HEADER: [kind],
        },
        "body": {"string": json.dumps(body).encode()},
    }


def stand_in_response(kind: StandIn, cassette: str) -> dict[str, Any]:
    """A vcrpy response dict answering an unrecorded request of ``kind``."""
    if kind == "telemetry":
        return _response(200, "OK", {}, kind)
    if kind == "preflight":
        message = f"crewguard: this token-count request is not recorded in {cassette}"
        status, reason = 404, "Not Found"
    else:
        message = (
            f"crewguard: no recorded response for this request in {cassette}; "
            "the test's failure shows what changed and how to record it"
        )
        status, reason = 400, "Bad Request"
    # One body every SDK reads a message from: OpenAI's and Gemini's `error` object,
    # Anthropic's `type: error`, Bedrock's top-level `message`.
    body = {
        "type": "error",
        "error": {"type": "crewguard_cassette_miss", "code": status, "message": message, "status": reason},
        "message": message,
    }
    return _response(status, reason, body, kind)
