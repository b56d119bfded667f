"""Classify one recorded exchange and dispatch to the provider's usage extractor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from . import anthropic, bedrock, gemini, ollama, openai
from .decoding import Headers, as_text, decode_body, decompress, header_value, model_of, parse_json
from .routing import host_provider, route
from .types import Exchange, Usage

Fold = Callable[[list[Any]], dict[str, Any]]
Extract = Callable[[Any, Headers], "Usage | None"]


def _plain(extract: Callable[[Any], Usage | None]) -> Extract:
    return lambda data, _headers: extract(data)


# api -> (fold a stream's chunks into the non-streamed shape, read usage from that shape)
_EXTRACTORS: dict[str, tuple[Fold, Extract]] = {
    "chat": (openai.fold_chat, _plain(openai.chat_usage)),
    "completions": (openai.fold_chat, _plain(openai.chat_usage)),
    "responses": (openai.fold_responses, _plain(openai.responses_usage)),
    "messages": (anthropic.fold_messages, _plain(anthropic.messages_usage)),
    "generate_content": (gemini.fold_generate, _plain(gemini.generate_usage)),
    "converse": (bedrock.fold_stream, _plain(bedrock.converse_usage)),
    "invoke": (bedrock.fold_stream, bedrock.invoke_usage),
    "ollama_chat": (ollama.fold_stream, _plain(ollama.native_usage)),
    "ollama_generate": (ollama.fold_stream, _plain(ollama.native_usage)),
}


def _embeddings_usage(data: Any) -> Usage | None:
    return gemini.vertex_embeddings_usage(data) or openai.embeddings_usage(data) or ollama.native_usage(data)


_OTHER = Exchange(kind="other", provider=None, api=None, model=None, usage=None, streamed=False)


def classify_exchange(
    method: str,
    url: str,
    request_body: bytes | str | None,
    status: int,
    response_headers: Headers,
    response_body: bytes | str | None,
) -> Exchange:
    """Classify one recorded HTTP exchange and read its token usage.

    ``status`` does not change the classification: a failed LLM call is still ``kind="llm"``
    (with ``usage=None`` unless the error body reports usage). Never raises.
    """
    del status  # kept in the signature for callers; the body alone says whether usage exists
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
        path = unquote(parts.path).rstrip("/")
    except ValueError:
        return _OTHER
    found = route(method.upper(), host, port, path)
    if found is None:
        return _OTHER
    kind, provider, api, url_model = found
    request: Any = _UNREAD  # the request body's JSON, parsed only when needed, once
    if api in _COMMON_PATHS and host_provider(host, port) is None:
        request = _request_json(request_body)
        if not _asks_a_model(request):
            return _OTHER  # a chat app's /messages, a mail API's: no model asked

    content_type = header_value(response_headers, "content-type").lower()
    try:
        raw = decompress(response_body, header_value(response_headers, "content-encoding").lower())
        streamed, data, chunks = decode_body(content_type, raw)
        fold, extract = _EXTRACTORS.get(api, (openai.fold_chat, _plain(_embeddings_usage)))
        if streamed and data is None:
            data = fold(chunks)
        usage = None if kind == "preflight" else extract(data, response_headers)
        if not (model := model_of(data)):
            model = model_of(_request_json(request_body) if request is _UNREAD else request) or url_model
    except Exception:  # a cassette is untrusted input: never fail a run on it
        streamed, usage, model = "event-stream" in content_type, None, url_model
    return Exchange(kind=kind, provider=provider, api=api, model=model, usage=usage, streamed=streamed)


# APIs whose path ends in a word other services use too (POST /channels/1/messages): on a host
# that is no known provider's, only a request naming a model and its input is an LLM call.
_COMMON_PATHS = frozenset({"messages", "responses"})
_UNREAD = object()


def _asks_a_model(request: Any) -> bool:
    return isinstance(request, dict) and "model" in request and ("messages" in request or "input" in request)


def _request_json(body: bytes | str | None) -> Any:
    text = as_text(decompress(body, ""))
    return parse_json(text) if text else None
