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

import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import streams

__all__ = ["ReceivedRequest", "Reply", "ScriptedProvider", "ToolCall"]


@dataclass(frozen=True)
class ToolCall:
    """A function/tool call the scripted model asks for."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One scripted model reply, with the usage block the provider reports for it."""

    text: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    input_tokens: int = 120
    output_tokens: int = 30
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    delay_s: float = 0.0
    status: int = 200
    model: str | None = None

    @classmethod
    def tool(cls, name: str, **arguments: Any) -> Reply:
        """A reply that calls one tool."""
        return cls(tool_calls=(ToolCall(name, arguments),))


@dataclass(frozen=True)
class ReceivedRequest:
    """A request the provider answered, as it arrived."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def prompt_text(self) -> str:
        """All message text of the request, joined, for assertions on what a crew sent."""
        return "\n".join(_message_texts(self.body))


Script = Iterable[Reply] | Callable[[ReceivedRequest], Reply]


def _message_texts(body: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    system = body.get("system")
    if isinstance(system, str):
        texts.append(system)
    elif isinstance(system, list):
        texts.extend(str(b.get("text", "")) for b in system if isinstance(b, dict))
    for message in body.get("messages") or body.get("input") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, dict):
                    texts.append(str(block.get("text") or block.get("content") or ""))
    return texts


def _embedding(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [((digest[i % len(digest)] + i) % 251) / 251.0 - 0.5 for i in range(dims)]


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
            return self._json(200, {"object": "response.input_tokens", "input_tokens": 100})
        if path.endswith("/messages/count_tokens"):
            return self._json(200, {"input_tokens": 100})
        if path.endswith("/embeddings"):
            return self._embeddings(request)
        if path.endswith("/chat/completions") or path.endswith("/messages"):
            with self._lock:
                reply = self._responder(request)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.status != 200:
                return self._error(reply)
            if reply.tool_calls and not request.body.get("tools"):
                # A real model cannot call tools it was not offered (CrewAI's forced final
                # answer offers none), so a tool reply turns into a plain answer there.
                reply = replace(reply, tool_calls=(), text=reply.text or "My best final answer.")
            if path.endswith("/messages"):
                if request.body.get("stream"):
                    return self._anthropic_stream(request, reply)
                return self._json(200, self._anthropic(request, reply))
            if request.body.get("stream"):
                return self._openai_stream(request, reply)
            return self._json(200, self._openai(request, reply))
        return self._json(404, {"error": {"message": f"scripted provider: no route {path}"}})

    @staticmethod
    def _json(status: int, payload: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        return status, {"content-type": "application/json"}, json.dumps(payload).encode()

    def _error(self, reply: Reply) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = self._json(
            reply.status,
            {"error": {"message": reply.text or "scripted error", "type": "scripted_error"}},
        )
        if reply.status == 429:
            headers["retry-after"] = "0"
        return status, headers, body

    def _openai_usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
        }

    def _openai(self, request: ReceivedRequest, reply: Reply) -> dict[str, Any]:
        n = next(self._ids)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
        return {
            "id": f"chatcmpl-scripted-{n}",
            "object": "chat.completion",
            "created": 1_750_000_000,
            "model": reply.model or request.body.get("model", "gpt-4o-mini"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": self._openai_usage(reply),
        }

    def _openai_stream(
        self, request: ReceivedRequest, reply: Reply
    ) -> tuple[int, dict[str, str], list[bytes]]:
        options = request.body.get("stream_options")
        with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        events = streams.openai_chunks(self._openai(request, reply), with_usage=with_usage)
        return 200, {"content-type": streams.CONTENT_TYPE}, events

    def _anthropic(self, request: ReceivedRequest, reply: Reply) -> dict[str, Any]:
        n = next(self._ids)
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for i, call in enumerate(reply.tool_calls):
            content.append(
                {"type": "tool_use", "id": f"toolu_{n}_{i}", "name": call.name, "input": call.arguments}
            )
        return {
            "id": f"msg_scripted_{n}",
            "type": "message",
            "role": "assistant",
            "model": reply.model or request.body.get("model", "claude-haiku-4-5"),
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens,
                "cache_read_input_tokens": reply.cached_tokens,
                "cache_creation_input_tokens": 0,
            },
        }

    def _anthropic_stream(
        self, request: ReceivedRequest, reply: Reply
    ) -> tuple[int, dict[str, str], list[bytes]]:
        return (
            200,
            {"content-type": streams.CONTENT_TYPE},
            streams.anthropic_events(self._anthropic(request, reply)),
        )

    def _embeddings(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        inputs = request.body.get("input", [])
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
        tokens = sum(len(t.split()) for t in texts)
        return self._json(
            200,
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": _embedding(t, self._embedding_dims)}
                    for i, t in enumerate(texts)
                ],
                "model": request.body.get("model", "text-embedding-3-small"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )
