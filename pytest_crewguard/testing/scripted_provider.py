"""A scripted OpenAI- and Anthropic-compatible HTTP provider on 127.0.0.1.

It lets tests record real cassettes through real crews without an API key: point a crew's
``LLM(base_url=...)`` at :attr:`ScriptedProvider.openai_base_url` (or ``anthropic_base_url``),
script the replies, record, stop the server, replay.

Served endpoints:

- ``POST /v1/chat/completions`` (OpenAI chat; streamed when ``stream`` is true, with the
  usage chunk only when the client asks for it with ``stream_options.include_usage``)
- ``POST /v1/responses/input_tokens`` (OpenAI token-count preflight)
- ``POST /v1/messages`` (Anthropic; streamed as the real API's server-sent events when
  ``stream`` is true) and ``POST /v1/messages/count_tokens``
- ``POST /v1/embeddings`` (deterministic vectors derived from the text)

The standard library's ``http.server`` is enough here: the server only has to speak plain
HTTP/1.1 on loopback to one client at a time per thread, and it keeps tests free of a web
framework dependency.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import bodies, streams
from .script import ReceivedRequest, Reply, Script, ToolCall

__all__ = ["ReceivedRequest", "Reply", "ScriptedProvider", "ToolCall"]


class ScriptedProvider:
    """An LLM provider that answers from a script, on ``127.0.0.1`` and an ephemeral port.

    ``script`` is either a sequence of :class:`Reply` (served in order) or a callable that
    picks the reply for each request, which keeps concurrent crews deterministic.
    Token-count preflights and embeddings are answered without consuming the script.
    """

    def __init__(self, script: Script, *, port: int = 0, embedding_dims: int = 1536) -> None:
        self._responder: Callable[[ReceivedRequest], Reply]
        if callable(script):
            self._responder = script
        else:
            replies = iter(list(script))
            self._responder = lambda _req: self._next_reply(replies)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._embedding_dims = embedding_dims
        self.requests: list[ReceivedRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @staticmethod
    def _next_reply(replies: Iterable[Reply]) -> Reply:
        try:
            return next(iter(replies))
        except StopIteration:
            return Reply(text="scripted provider: the script has no more replies", status=500)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def start(self) -> ScriptedProvider:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="scripted-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def llm_requests(self) -> list[ReceivedRequest]:
        """Requests that consumed a scripted reply (not preflights or embeddings)."""
        return [r for r in self.requests if r.path.endswith(("/chat/completions", "/messages"))]

    # -- request handling ------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {}
                request = ReceivedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with provider._lock:
                    provider.requests.append(request)
                status, headers, payload = provider._answer(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if isinstance(payload, bytes):
                        self.send_header("content-length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                    else:
                        # A stream goes out as the real APIs send it: chunked, one event a chunk.
                        self.send_header("transfer-encoding", "chunked")
                        self.end_headers()
                        for event in payload:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                            self.wfile.flush()
                        self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up on a delayed reply (a timed-out test): nothing to tell.
                    self.close_connection = True

        return Handler

    def _answer(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes | list[bytes]]:
        path = request.path.split("?", 1)[0]
        if path.endswith("/responses/input_tokens"):
            return bodies.json_answer(200, {"object": "response.input_tokens", "input_tokens": 100})
        if path.endswith("/messages/count_tokens"):
            return bodies.json_answer(200, {"input_tokens": 100})
        if path.endswith("/embeddings"):
            return bodies.embeddings(request, self._embedding_dims)
        if not (path.endswith("/chat/completions") or path.endswith("/messages")):
            return bodies.json_answer(404, {"error": {"message": f"scripted provider: no route {path}"}})
        with self._lock:
            reply = self._responder(request)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            return bodies.error(reply)
        if reply.tool_calls and not request.body.get("tools"):
            # A real model cannot call tools it was not offered (CrewAI's forced final
            # answer offers none), so a tool reply turns into a plain answer there.
            reply = replace(reply, tool_calls=(), text=reply.text or "My best final answer.")
        stream = bool(request.body.get("stream"))
        if path.endswith("/messages"):
            message = bodies.anthropic_message(request, reply, next(self._ids))
            if stream:
                return 200, {"content-type": streams.CONTENT_TYPE}, streams.anthropic_events(message)
            return bodies.json_answer(200, message)
        completion = bodies.openai_completion(request, reply, next(self._ids))
        if stream:
            options = request.body.get("stream_options")
            with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            chunks = streams.openai_chunks(completion, with_usage=with_usage)
            return 200, {"content-type": streams.CONTENT_TYPE}, chunks
        return bodies.json_answer(200, completion)
