"""What one recorded HTTP exchange was (an LLM call, a token-count preflight, an embedding,
anything else) and the token usage the provider reported for it.

:func:`classify_exchange` looks at the URL path (the host only where providers share paths),
decodes the response body (JSON, gzip, server-sent events, a Gemini JSON array, a Bedrock
binary event stream) and reads the usage block. It never raises: odd input gives
``kind="other"`` or ``usage=None``.

Token counts use one convention for every provider: ``input_tokens`` counts *all* input tokens
including cache reads and writes, ``output_tokens`` includes reasoning tokens.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

__all__ = ["Exchange", "Usage", "classify_exchange"]

Kind = Literal["llm", "preflight", "embedding", "other"]


@dataclass(frozen=True)
class Usage:
    """Token usage of one call.

    ``input_tokens`` includes cached tokens (Anthropic and Bedrock report them apart; they are
    added here), ``output_tokens`` includes reasoning tokens (Gemini reports them apart; they
    are added here).
    """

    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class Exchange:
    """What one recorded HTTP request/response pair was.

    ``provider`` is one of ``"openai"``, ``"anthropic"``, ``"google"``, ``"azure"``,
    ``"bedrock"``, ``"openrouter"`` (``None`` for ``kind="other"``). ``api`` is one of
    ``"chat"``, ``"completions"``, ``"responses"``, ``"messages"``, ``"generate_content"``,
    ``"converse"``, ``"invoke"``, ``"embeddings"``, ``"count_tokens"``. ``model`` comes from
    the response body when present, else from the request body or the URL. ``usage`` is
    ``None`` when the response carries no usage block (errors, preflights, non-LLM traffic).
    """

    kind: Kind
    provider: str | None
    api: str | None
    model: str | None
    usage: Usage | None
    streamed: bool


_OTHER = Exchange(kind="other", provider=None, api=None, model=None, usage=None, streamed=False)


def classify_exchange(
    method: str,
    url: str,
    request_body: bytes | str | None,
    status: int,
    response_headers: Mapping[str, Sequence[str] | str],
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
        path = unquote(parts.path).rstrip("/")
    except ValueError:
        return _OTHER
    route = _route(method.upper(), host, path)
    if route is None:
        return _OTHER
    kind, provider, api, url_model = route

    content_type = header_value(response_headers, "content-type").lower()
    raw = _decompress(response_body, header_value(response_headers, "content-encoding").lower())
    try:
        streamed, data = _decode_response(api, content_type, raw)
        usage = _extract_usage(api, data, response_headers) if kind != "preflight" else None
        model = _response_model(data) or _request_model(request_body) or url_model
    except Exception:  # a cassette is untrusted input: never fail a run on it
        streamed, usage, model = "event-stream" in content_type, None, url_model
    return Exchange(kind=kind, provider=provider, api=api, model=model, usage=usage, streamed=streamed)


# --- routing ---------------------------------------------------------------------------------

_GOOGLE_METHOD = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
_BEDROCK_PATH = re.compile(r"/model/(?P<model>.+)/(?P<op>[a-z_-]+)$")
_AZURE_DEPLOYMENT = re.compile(r"/deployments/(?P<model>[^/]+)/")


def _host_provider(host: str) -> str | None:
    """The provider a host belongs to, where the host alone says it."""
    if host.endswith((".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")):
        return "azure"
    if host == "openrouter.ai" or host.endswith(".openrouter.ai"):
        return "openrouter"
    if host.startswith("bedrock-runtime") and host.endswith(".amazonaws.com"):
        return "bedrock"
    if host == "generativelanguage.googleapis.com" or host.endswith("aiplatform.googleapis.com"):
        return "google"
    if host == "api.openai.com":
        return "openai"
    if host == "api.anthropic.com":
        return "anthropic"
    return None


def _route(method: str, host: str, path: str) -> tuple[Kind, str, str, str | None] | None:
    """``(kind, provider, api, model from the URL)`` for a provider endpoint, else ``None``."""
    if method != "POST":  # every metered provider call is a POST; GETs are retrievals/listings
        return None
    provider = _host_provider(host)

    if provider == "google" and (m := _GOOGLE_METHOD.search(path)):
        model, verb = m["model"], m["method"]
        if verb in ("generateContent", "streamGenerateContent"):
            return "llm", "google", "generate_content", model
        if verb in ("countTokens", "computeTokens"):
            return "preflight", "google", "count_tokens", model
        if verb in ("embedContent", "batchEmbedContents"):
            return "embedding", "google", "embeddings", model
        if verb in ("rawPredict", "streamRawPredict") and "/publishers/anthropic/" in path:
            # Claude on Vertex AI: Anthropic's Messages API and prices behind a Google URL.
            return "llm", "anthropic", "messages", model
        if verb == "predict" and "embedding" in model:  # Vertex AI text embeddings
            return "embedding", "google", "embeddings", model
        return None

    if provider == "bedrock" and (m := _BEDROCK_PATH.search(path)):
        model, op = m["model"], m["op"]
        if op in ("converse", "converse-stream"):
            return "llm", "bedrock", "converse", model
        if op in ("invoke", "invoke-with-response-stream"):
            return "llm", "bedrock", "invoke", model
        if op in ("count-tokens", "count_tokens", "counttokens"):
            return "preflight", "bedrock", "count_tokens", model
        return None

    url_model = m["model"] if provider == "azure" and (m := _AZURE_DEPLOYMENT.search(path)) else None
    # Any other host (including 127.0.0.1 test servers) is told apart by its path alone.
    if path.endswith("/responses/input_tokens"):
        return "preflight", provider or "openai", "count_tokens", url_model
    if path.endswith("/messages/count_tokens"):
        return "preflight", provider or "anthropic", "count_tokens", url_model
    if path.endswith("/chat/completions"):
        return "llm", provider or "openai", "chat", url_model
    if path.endswith("/completions"):  # legacy OpenAI text completions, same usage shape as chat
        return "llm", provider or "openai", "completions", url_model
    if path.endswith("/responses"):
        return "llm", provider or "openai", "responses", url_model
    if path.endswith("/messages"):
        return "llm", provider or "anthropic", "messages", url_model
    if path.endswith("/embeddings"):
        return "embedding", provider or "openai", "embeddings", url_model
    return None


# --- body decoding ---------------------------------------------------------------------------


def header_value(headers: Mapping[str, Sequence[str] | str], name: str) -> str:
    """First value of a header, case-insensitive; ``""`` when absent."""
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, str):
                return value
            return str(value[0]) if value else ""
    return ""


def _decompress(body: bytes | str | None, encoding: str) -> bytes | str | None:
    """Undo gzip/deflate when the body is still compressed (cassettes differ on this)."""
    if not isinstance(body, bytes):
        return body
    try:
        if body[:2] == b"\x1f\x8b":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except (OSError, EOFError, zlib.error):
        pass
    return body


def _as_text(raw: bytes | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode_response(api: str, content_type: str, raw: bytes | str | None) -> tuple[bool, Any]:
    """``(streamed, data)``: data is the response reshaped like a non-streamed JSON body.

    Hand-written because genai-prices reads only complete JSON bodies; streams must first be
    folded into that shape (the final usage-carrying chunk or event).
    """
    if "vnd.amazon.eventstream" in content_type and isinstance(raw, bytes):
        return True, _fold_bedrock_stream(_eventstream_payloads(raw))
    text = _as_text(raw)
    if text is None:
        return "event-stream" in content_type, None
    head = text.lstrip()[:6]
    if "event-stream" in content_type or head.startswith(("data:", "event:")):
        parsed = _sse_events(text)
        if not parsed and head.startswith(("{", "[")):  # an error body served as event-stream
            return True, _json(text)
        return True, _fold_stream(api, parsed)
    data = _json(text)
    if isinstance(data, list):  # Gemini streamGenerateContent without alt=sse: a JSON array
        return True, _fold_stream(api, [(None, chunk) for chunk in data])
    return False, data


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _sse_events(text: str) -> list[tuple[str | None, Any]]:
    """Server-sent events as ``(event name, decoded JSON data)``; ``[DONE]`` and junk dropped."""
    events: list[tuple[str | None, Any]] = []
    name: str | None = None
    data: list[str] = []

    def flush() -> None:
        nonlocal name
        if data:
            payload = _json("\n".join(data))
            if payload is not None:
                events.append((name, payload))
        data.clear()
        name = None

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            name = line[6:].strip()
    flush()
    return events


def _fold_stream(api: str, events: list[tuple[str | None, Any]]) -> dict[str, Any]:
    """Fold stream events into the shape of the non-streamed response body."""
    chunks = [payload for _, payload in events if isinstance(payload, dict)]
    folded: dict[str, Any] = {}
    if api == "messages":
        # Anthropic: message_start carries the input side, every message_delta the running
        # output count (newer API versions repeat input/cache counts there too): last one wins.
        usage: dict[str, Any] = {}
        for chunk in chunks:
            if chunk.get("type") == "message_start" and isinstance(chunk.get("message"), dict):
                message = chunk["message"]
                folded["model"] = message.get("model")
                if isinstance(message.get("usage"), dict):
                    usage.update(message["usage"])
            elif chunk.get("type") == "message_delta" and isinstance(chunk.get("usage"), dict):
                usage.update({k: v for k, v in chunk["usage"].items() if v is not None})
        if usage:
            folded["usage"] = usage
        return folded
    if api == "responses":
        # OpenAI Responses: response.completed (or .incomplete/.failed) carries the full response.
        for chunk in chunks:
            response = chunk.get("response")
            if isinstance(response, dict):
                if response.get("model"):
                    folded["model"] = response["model"]
                if isinstance(response.get("usage"), dict):
                    folded = dict(response)
        return folded
    # OpenAI-style chat chunks and Gemini chunks: the last chunk with a usage block has the total.
    for chunk in chunks:
        for key in ("model", "modelVersion"):
            if isinstance(chunk.get(key), str) and chunk[key]:
                folded.setdefault(key, chunk[key])
        for key in ("usage", "usageMetadata"):
            if isinstance(chunk.get(key), dict):
                folded[key] = chunk[key]
    return folded


def _eventstream_payloads(data: bytes) -> list[Any]:
    """JSON payloads of an AWS binary event stream (Bedrock ``converse-stream``/``invoke-with-
    response-stream``). Frame: total length, headers length, prelude CRC, headers, payload, CRC.
    """
    payloads: list[Any] = []
    pos = 0
    while pos + 16 <= len(data):
        total, headers_len = struct.unpack_from(">II", data, pos)
        if total < 16 or pos + total > len(data):
            break
        payload = _json(data[pos + 12 + headers_len : pos + total - 4].decode("utf-8", "replace"))
        if isinstance(payload, dict) and isinstance(payload.get("bytes"), str):
            try:  # invoke-with-response-stream wraps each model chunk in base64
                payload = _json(base64.b64decode(payload["bytes"]).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                payload = None
        payloads.append(payload)
        pos += total
    return payloads


def _fold_bedrock_stream(payloads: list[Any]) -> dict[str, Any]:
    folded: dict[str, Any] = {}
    for payload in payloads:
        if not isinstance(payload, dict):
            continue
        for key in ("usage", "amazon-bedrock-invocationMetrics"):
            if isinstance(payload.get(key), dict):
                folded[key] = payload[key]
        if isinstance(payload.get("message"), dict):  # Anthropic message_start via invoke
            folded.update({k: v for k, v in payload["message"].items() if k in ("model", "usage")})
        elif payload.get("type") == "message_delta" and isinstance(payload.get("usage"), dict):
            folded["usage"] = {**folded.get("usage", {}), **payload["usage"]}
    return folded


def _response_model(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("model", "modelVersion"):
            if isinstance(data.get(key), str) and data[key]:
                # Gemini's modelVersion may be a resource name: "models/gemini-2.5-flash-...".
                return str(data[key]).removeprefix("models/")
    return None


def _request_model(body: bytes | str | None) -> str | None:
    text = _as_text(_decompress(body, ""))
    return _response_model(_json(text)) if text else None


# --- usage extraction ------------------------------------------------------------------------

# genai-prices extractor (provider_id, api_flavor) per response shape.
_GENAI_FLAVOR: dict[str, tuple[str, str]] = {
    "chat": ("openai", "chat"),
    "completions": ("openai", "chat"),
    "responses": ("openai", "responses"),
    "embeddings": ("openai", "embeddings"),
    "messages": ("anthropic", "default"),
    "generate_content": ("google", "default"),
    "converse": ("aws", "default"),
}
# Where the usage block sits in each shape.
_USAGE_KEY: dict[str, str] = {"generate_content": "usageMetadata"}


def _extract_usage(api: str, data: Any, headers: Mapping[str, Sequence[str] | str]) -> Usage | None:
    if api == "invoke":
        return _bedrock_invoke_usage(data, headers)
    if api == "embeddings" and isinstance(data, dict) and isinstance(data.get("predictions"), list):
        return _vertex_embedding_usage(data["predictions"])
    block = data.get(_USAGE_KEY.get(api, "usage")) if isinstance(data, dict) else None
    if not isinstance(block, dict) or not block:
        return None
    return _usage_from_genai(api, block) or _usage_by_hand(api, block)


def _usage_from_genai(api: str, block: Mapping[str, Any]) -> Usage | None:
    """Usage through genai-prices' extractors; ``None`` where they do not apply or fail."""
    flavor = _GENAI_FLAVOR.get(api)
    if flavor is None:
        return None
    import genai_prices  # lazy: it loads a 1.6 MB price table; the plugin must import fast

    provider_id, api_flavor = flavor
    # Only the usage block is passed: with the model name genai-prices would also look the model
    # up and raise LookupError for models it does not know, which says nothing about usage.
    try:
        found = genai_prices.extract_usage(
            {_USAGE_KEY.get(api, "usage"): dict(block)}, provider_id=provider_id, api_flavor=api_flavor
        ).usage
        values = {
            key: int(found.reported_value(key))
            for key in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        }
        reasoning = int(found.reported_value("output_reasoning_tokens"))
    except (ValueError, LookupError, TypeError, ArithmeticError):  # missing required field etc.
        return None
    if api == "embeddings":
        values["output_tokens"] = 0
    return Usage(
        input_tokens=values["input_tokens"],
        output_tokens=values["output_tokens"],
        cached_tokens=values["cache_read_tokens"],
        reasoning_tokens=reasoning,
        cache_write_tokens=values["cache_write_tokens"],
    )


def _n(block: Any, *path: str) -> int:
    """A non-negative token count at ``path``, 0 when absent or not a number."""
    value = block
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return 0
    return int(value)


def _usage_by_hand(api: str, block: Mapping[str, Any]) -> Usage | None:
    """Fallback for usage blocks genai-prices rejects (a required field missing, e.g. an
    OpenAI-compatible server that omits ``completion_tokens``). Same conventions as the library.
    """
    if api in ("chat", "completions", "embeddings"):
        if "prompt_tokens" not in block and "completion_tokens" not in block:
            return _usage_by_hand("responses", block) if "input_tokens" in block else None
        return Usage(
            input_tokens=_n(block, "prompt_tokens"),
            output_tokens=_n(block, "completion_tokens"),
            cached_tokens=_n(block, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=_n(block, "completion_tokens_details", "reasoning_tokens"),
            cache_write_tokens=_n(block, "prompt_tokens_details", "cache_write_tokens"),
        )
    if api == "responses":
        if "input_tokens" not in block and "output_tokens" not in block:
            return None
        return Usage(
            input_tokens=_n(block, "input_tokens"),
            output_tokens=_n(block, "output_tokens"),
            cached_tokens=_n(block, "input_tokens_details", "cached_tokens"),
            reasoning_tokens=_n(block, "output_tokens_details", "reasoning_tokens"),
            cache_write_tokens=_n(block, "input_tokens_details", "cache_write_tokens"),
        )
    if api == "messages":
        if "input_tokens" not in block and "output_tokens" not in block:
            return None
        # Anthropic's input_tokens excludes cache reads and writes.
        read, write = _n(block, "cache_read_input_tokens"), _n(block, "cache_creation_input_tokens")
        return Usage(
            input_tokens=_n(block, "input_tokens") + read + write,
            output_tokens=_n(block, "output_tokens"),
            cached_tokens=read,
            reasoning_tokens=_n(block, "output_tokens_details", "thinking_tokens"),
            cache_write_tokens=write,
        )
    if api == "generate_content":
        if "promptTokenCount" not in block and "candidatesTokenCount" not in block:
            return None
        # Gemini: candidatesTokenCount excludes thoughts; tool-use prompt tokens are input too.
        thoughts = _n(block, "thoughtsTokenCount")
        return Usage(
            input_tokens=_n(block, "promptTokenCount") + _n(block, "toolUsePromptTokenCount"),
            output_tokens=_n(block, "candidatesTokenCount") + thoughts,
            cached_tokens=_n(block, "cachedContentTokenCount"),
            reasoning_tokens=thoughts,
        )
    if api == "converse":
        if "inputTokens" not in block and "outputTokens" not in block:
            return None
        # Bedrock's inputTokens excludes cache reads and writes, like Anthropic's.
        read, write = _n(block, "cacheReadInputTokens"), _n(block, "cacheWriteInputTokens")
        return Usage(
            input_tokens=_n(block, "inputTokens") + read + write,
            output_tokens=_n(block, "outputTokens"),
            cached_tokens=read,
            cache_write_tokens=write,
        )
    return None


def _bedrock_invoke_usage(data: Any, headers: Mapping[str, Sequence[str] | str]) -> Usage | None:
    """Bedrock InvokeModel: the body is the model vendor's own shape, so genai-prices cannot know
    it; Anthropic bodies carry ``usage``, streams ``amazon-bedrock-invocationMetrics``, and the
    response headers carry the counts for every model.
    """
    if isinstance(data, dict):
        if isinstance(data.get("usage"), dict) and (found := _usage_by_hand("messages", data["usage"])):
            return found
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            return Usage(
                input_tokens=_n(metrics, "inputTokenCount")
                + _n(metrics, "cacheReadInputTokenCount")
                + _n(metrics, "cacheWriteInputTokenCount"),
                output_tokens=_n(metrics, "outputTokenCount"),
                cached_tokens=_n(metrics, "cacheReadInputTokenCount"),
                cache_write_tokens=_n(metrics, "cacheWriteInputTokenCount"),
            )
    counts = {
        name: header_value(headers, f"x-amzn-bedrock-{name}-token-count") for name in ("input", "output")
    }
    if all(value.isdigit() for value in counts.values()):
        return Usage(input_tokens=int(counts["input"]), output_tokens=int(counts["output"]))
    return None


def _vertex_embedding_usage(predictions: list[Any]) -> Usage | None:
    """Vertex AI ``:predict`` embeddings report tokens per instance; genai-prices has no
    extractor for this shape."""
    counts = [
        _n(p, "embeddings", "statistics", "token_count")
        for p in predictions
        if isinstance(p, dict) and isinstance(p.get("embeddings"), dict)
    ]
    return Usage(input_tokens=sum(counts), output_tokens=0) if counts else None
