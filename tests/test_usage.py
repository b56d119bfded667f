"""Tests of :mod:`pytest_crewguard.usage`: routing, body decoding and odd input.

Real responses come from the sample of CrewAI's own cassettes in ``tests/data/crewai_cassettes``
(MIT); provider-by-provider numbers and prices are in ``test_providers.py``.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.usage import Usage, classify_exchange
from tests.crewai_cassettes import recorded, sample

# A JSON key "usage" or "usageMetadata" holding an object (not null), or Ollama's counts.
USAGE_FIELD = re.compile(r'"usage(?:Metadata)?"\s*:\s*\{|"eval_count"')


def _text(body: bytes | str | None) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""


# --- the sample of real cassettes ------------------------------------------------------------


def test_every_reported_usage_block_is_read() -> None:
    checked = 0
    for rec in sample():
        ex = rec.classify()
        if ex.kind != "llm" or rec.status != 200 or not USAGE_FIELD.search(_text(rec.body)):
            continue
        checked += 1
        assert ex.usage is not None, f"{rec.file}#{rec.index}: usage block not read"
        assert ex.usage.input_tokens > 0, f"{rec.file}#{rec.index}: {ex.usage}"
        assert ex.model, f"{rec.file}#{rec.index}: no model"
    assert checked >= 18


# Hosts and paths CrewAI's own recordings contacted that are not LLM calls.
@pytest.mark.parametrize(
    "url",
    [
        "https://telemetry.crewai.com:4319/v1/traces",
        "https://app.crewai.com/crewai_plus/api/v1/tracing/ephemeral/batches",
        "http://localhost:3000/crewai_plus/api/v1/tracing/batches",
        "https://api.agentops.ai/v2/create_session",
        "https://api.exa.ai/search",
        "https://oauth2.googleapis.com/token",
        "https://api.openai.com/v1/files",
        "https://api.anthropic.com/v1/files",
        "http://localhost:11434/api/show",
    ],
)
def test_telemetry_tracing_and_files_are_never_llm(url: str) -> None:
    body = '{"usage": {"prompt_tokens": 1, "completion_tokens": 1}}'
    ex = classify_exchange("POST", url, "{}", 200, {}, body)
    assert (ex.kind, ex.usage) == ("other", None)


def test_event_streams_are_detected() -> None:
    for rec in sample():
        content_type = " ".join(rec.headers.get("Content-Type", rec.headers.get("content-type", [])))
        ex = rec.classify()
        if ex.kind == "llm" and "event-stream" in content_type:
            assert ex.streamed, f"{rec.file}#{rec.index}"


def test_gemini_stream_as_json_array_equals_sse() -> None:
    """Without ``alt=sse`` Gemini streams one JSON array; same chunks, same usage."""
    rec = recorded("llms/google/test_google_async_streaming_returns_usage_metrics.yaml", 0)
    chunks = [json.loads(line[5:]) for line in _text(rec.body).splitlines() if line.startswith("data:")]
    uri = rec.uri.replace("?alt=sse", "")
    ex = classify_exchange("POST", uri, rec.request_body, 200, {}, json.dumps(chunks))
    assert ex.streamed is True
    assert ex.usage == Usage(163, 13)


def test_gzip_bytes_body_is_decompressed() -> None:
    rec = recorded("llms/openai/test_openai_completion_call_returns_usage_metrics.yaml", 0)
    body = gzip.compress(_text(rec.body).encode())
    ex = classify_exchange("POST", rec.uri, None, 200, {"Content-Encoding": ["gzip"]}, body)
    assert ex.usage == Usage(173, 116)
    assert ex.model == "gpt-4o-2024-08-06"


def test_error_response_is_llm_without_usage() -> None:
    body = '{"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}'
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    ex = classify_exchange("POST", url, None, 400, {"Content-Type": ["text/event-stream"]}, body)
    assert (ex.kind, ex.provider, ex.usage) == ("llm", "google", None)


# --- routing and odd input (no files needed) -------------------------------------------------


@pytest.mark.parametrize(
    ("url", "provider"),
    [
        ("https://api.anthropic.com/v1/messages/count_tokens", "anthropic"),
        ("https://api.openai.com/v1/responses/input_tokens", "openai"),
        ("http://127.0.0.1:8765/v1/messages/count_tokens", "anthropic"),
        ("http://127.0.0.1:8765/v1/responses/input_tokens", "openai"),
        ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:countTokens", "google"),
        ("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-v2/count-tokens", "bedrock"),
    ],
)
def test_token_count_preflights_are_not_llm_calls(url: str, provider: str) -> None:
    ex = classify_exchange(
        "POST", url, '{"model": "m"}', 200, {"content-type": "application/json"}, b'{"input_tokens": 100}'
    )
    assert (ex.kind, ex.provider, ex.api) == ("preflight", provider, "count_tokens")
    assert ex.usage is None  # a count, not a billed call


@pytest.mark.parametrize(
    ("url", "kind", "provider", "api"),
    [
        ("http://127.0.0.1:5001/v1/chat/completions", "llm", "openai", "chat"),
        ("http://localhost:5001/v1/responses", "llm", "openai", "responses"),
        ("http://localhost:5001/v1/messages", "llm", "anthropic", "messages"),
        ("http://localhost:5001/v1/embeddings", "embedding", "openai", "embeddings"),
        (
            "https://r.cognitiveservices.azure.com/openai/deployments/d/chat/completions",
            "llm",
            "azure",
            "chat",
        ),
        ("https://openrouter.ai/api/v1/chat/completions", "llm", "openrouter", "chat"),
        (
            "https://generativelanguage.googleapis.com/v1beta/models/text-embedding-004:embedContent",
            "embedding",
            "google",
            "embeddings",
        ),
        (
            "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic"
            "/models/claude-sonnet-4-5:rawPredict",
            "llm",
            "anthropic",
            "messages",
        ),
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse-stream",
            "llm",
            "bedrock",
            "converse",
        ),
        ("https://telemetry.crewai.com:4319/v1/traces", "other", None, None),
        ("https://api.openai.com/v1/files", "other", None, None),
        ("http://localhost:11434/api/generate", "llm", "ollama", "ollama_generate"),
        ("https://ollama.example.net/api/chat", "llm", "ollama", "ollama_chat"),
        ("http://localhost:11434/v1/chat/completions", "llm", "ollama", "chat"),
        ("http://localhost:11434/api/show", "other", None, None),
        ("http://localhost:11434/api/embed", "embedding", "ollama", "ollama_embeddings"),
        # OpenAI's API shape at providers with prices of their own (gpt-oss at Cerebras is not
        # OpenAI's price).
        ("https://api.cerebras.ai/v1/chat/completions", "llm", "cerebras", "chat"),
        ("https://api.groq.com/openai/v1/chat/completions", "llm", "groq", "chat"),
        (
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke",
            "embedding",
            "bedrock",
            "invoke",
        ),
    ],
)
def test_routing_by_path_and_host(url: str, kind: str, provider: str | None, api: str | None) -> None:
    ex = classify_exchange("POST", url, MODEL_REQUEST, 200, {}, None)
    assert (ex.kind, ex.provider, ex.api) == (kind, provider, api)


MODEL_REQUEST = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize(
    "url", ["https://discord.com/api/v10/channels/1/messages", "https://graph.microsoft.com/v1.0/me/messages",
            "http://localhost:5001/v1/responses"]
)
def test_a_messages_path_of_another_service_is_no_llm_call(url: str) -> None:
    # A tool posting a chat message was an Anthropic call of unknown usage: counted in
    # llm_calls, and failing the test as unpriced.
    ex = classify_exchange("POST", url, b'{"content": "The report is ready."}', 200, {}, b'{"id": "1"}')
    assert ex.kind == "other"


def test_a_titan_embedding_on_bedrock_reads_its_token_count() -> None:
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke"
    body = b'{"embedding": [0.1, 0.2], "inputTextTokenCount": 7}'
    headers = {"Content-Type": "application/json"}
    ex = classify_exchange("POST", url, b'{"inputText": "hi"}', 200, headers, body)
    assert (ex.kind, ex.usage) == ("embedding", Usage(7, 0))


def test_get_requests_are_never_llm_calls() -> None:
    ex = classify_exchange("GET", "https://api.openai.com/v1/responses", None, 200, {}, None)
    assert ex.kind == "other"


@pytest.mark.parametrize(
    "body",
    [
        None,
        "",
        "not json",
        b"\xff\xfe\x00binary",
        "[1, 2",
        '{"usage": "weird"}',
        '{"usage": {"x": 1}}',
        "data: {broken\n\n",
        b"\x1f\x8bnot really gzip",
        '{"usage": {"prompt_tokens": -5, "completion_tokens": "3"}}',
    ],
)
def test_odd_bodies_never_raise(body: bytes | str | None) -> None:
    ex = classify_exchange("POST", "https://api.openai.com/v1/chat/completions", "{]", 200, {}, body)
    assert ex.kind == "llm"
    assert ex.usage is None or ex.usage.input_tokens == 0


def test_odd_urls_never_raise() -> None:
    for url in ("", "not a url", "http://[::1/v1/chat/completions", "https:///chat/completions?x"):
        classify_exchange("POST", url, None, 200, {}, None)


def test_partial_openai_compatible_usage_falls_back_to_hand_extraction() -> None:
    """genai-prices requires completion_tokens; some OpenAI-compatible servers omit it."""
    body = '{"model": "local-model", "usage": {"prompt_tokens": 42}}'
    ex = classify_exchange("POST", "http://127.0.0.1:9/v1/chat/completions", None, 200, {}, body)
    assert ex.usage == Usage(42, 0)
    assert ex.model == "local-model"


def test_model_falls_back_to_request_body() -> None:
    body = '{"usage": {"prompt_tokens": 7, "completion_tokens": 3}}'
    url = "http://127.0.0.1:9/v1/chat/completions"
    ex = classify_exchange("POST", url, b'{"model": "m-1"}', 200, {}, body)
    assert (ex.model, ex.usage) == ("m-1", Usage(7, 3))


def _eventstream_frame(payload: dict[str, Any]) -> bytes:
    """One AWS event-stream frame (no headers; CRCs are not checked by the reader)."""
    data = json.dumps(payload).encode()
    total = 16 + len(data)
    return struct.pack(">III", total, 0, 0) + data + b"\0\0\0\0"


def test_bedrock_converse_stream_reads_the_metadata_event() -> None:
    usage = {"inputTokens": 20, "outputTokens": 5, "cacheReadInputTokens": 100}
    body = _eventstream_frame({"contentBlockIndex": 0, "delta": {"text": "Hi"}}) + _eventstream_frame(
        {"metrics": {"latencyMs": 300}, "usage": usage}
    )
    ex = classify_exchange(
        "POST",
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic.claude-sonnet-4-6/converse-stream",
        None,
        200,
        {"Content-Type": ["application/vnd.amazon.eventstream"]},
        body,
    )
    assert ex.streamed is True
    assert ex.usage == Usage(120, 5, cached_tokens=100)


def test_bedrock_invoke_stream_reads_invocation_metrics() -> None:
    metrics = {"inputTokenCount": 11, "outputTokenCount": 4}
    chunk = {"type": "message_stop", "amazon-bedrock-invocationMetrics": metrics}
    body = _eventstream_frame({"bytes": base64.b64encode(json.dumps(chunk).encode()).decode()})
    ex = classify_exchange(
        "POST",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku/invoke-with-response-stream",
        None,
        200,
        {"content-type": "application/vnd.amazon.eventstream"},
        body,
    )
    assert (ex.api, ex.streamed, ex.usage) == ("invoke", True, Usage(11, 4))


def test_usage_total_tokens() -> None:
    assert Usage(input_tokens=100, output_tokens=20, cached_tokens=50, reasoning_tokens=5).total_tokens == 120


def test_importing_usage_does_not_load_genai_prices() -> None:
    code = "import sys, pytest_crewguard.usage; sys.exit('genai_prices' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_openai_embeddings_bill_input_only() -> None:
    usage = {"prompt_tokens": 522, "total_tokens": 522}
    body = json.dumps({"model": "text-embedding-3-small", "data": [], "usage": usage})
    ex = classify_exchange("POST", "https://api.openai.com/v1/embeddings", None, 200, {}, body)
    assert (ex.kind, ex.model, ex.usage) == ("embedding", "text-embedding-3-small", Usage(522, 0))


def test_vertex_embeddings_add_up_per_instance() -> None:
    stats = [{"embeddings": {"statistics": {"token_count": n}, "values": [0.1]}} for n in (5, 7)]
    url = "https://aiplatform.googleapis.com/v1beta1/publishers/google/models/gemini-embedding-001:predict"
    ex = classify_exchange("POST", url, None, 200, {}, json.dumps({"predictions": stats}))
    assert (ex.kind, ex.usage) == ("embedding", Usage(12, 0))


def test_ollama_chat_ndjson_stream_reads_the_final_line() -> None:
    lines = [
        {"model": "llama3.2", "message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"model": "llama3.2", "message": {"role": "assistant", "content": "lo"}, "done": False},
        {"model": "llama3.2", "done": True, "prompt_eval_count": 26, "eval_count": 2},
    ]
    body = "\n".join(json.dumps(line) for line in lines) + "\n"
    headers = {"Content-Type": ["application/x-ndjson"]}
    ex = classify_exchange("POST", "http://localhost:11434/api/chat", None, 200, headers, body)
    assert (ex.provider, ex.api, ex.model, ex.streamed) == ("ollama", "ollama_chat", "llama3.2", True)
    assert ex.usage == Usage(26, 2)


def test_ollama_prompt_served_from_its_cache_counts_zero_input() -> None:
    body = '{"model": "llama3.1", "response": "x", "done": true, "eval_count": 4}'
    ex = classify_exchange("POST", "http://127.0.0.1:11434/api/generate", None, 200, {}, body)
    assert ex.usage == Usage(0, 4)


def test_ollama_stream_without_final_counts_is_usage_unknown() -> None:
    chunk = '{"model": "llama3.1", "response": "a", "done": false}\n'
    body = chunk + chunk
    ex = classify_exchange("POST", "http://127.0.0.1:11434/api/generate", None, 200, {}, body)
    assert (ex.kind, ex.streamed, ex.usage) == ("llm", True, None)


def test_gemini_total_only_gives_the_output_by_difference() -> None:
    body = (
        '{"usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 20}, "modelVersion": "gemma-3-27b-it"}'
    )
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemma-3-27b-it:generateContent"
    assert classify_exchange("POST", url, None, 200, {}, body).usage == Usage(8, 12)


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e.get('type', 'x')}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


ANTHROPIC_START = {
    "type": "message_start",
    "message": {"model": "claude-haiku-4-5", "usage": {"input_tokens": 5000, "output_tokens": 1}},
}
ANTHROPIC_END = {
    "type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 321}
}
TEXT_DELTA = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}


@pytest.mark.parametrize(
    ("events", "usage"),
    [
        ((ANTHROPIC_START, TEXT_DELTA, ANTHROPIC_END), Usage(5000, 321)),
        # Cut off before message_delta: message_start's output count is a placeholder.
        ((ANTHROPIC_START, TEXT_DELTA), None),
        # An overload midway, on HTTP 200: the call did not complete as counted.
        ((ANTHROPIC_START, TEXT_DELTA, OVERLOADED), None),
    ],
)
def test_an_anthropic_stream_has_usage_only_once_it_ends(
    events: tuple[dict[str, Any], ...], usage: Any
) -> None:
    # Both partial streams were priced as whole calls of 5,000 in and 1 out.
    headers = {"Content-Type": "text/event-stream"}
    url = "https://api.anthropic.com/v1/messages"
    assert classify_exchange("POST", url, MODEL_REQUEST, 200, headers, _sse(*events)).usage == usage


def test_a_bedrock_invoke_stream_cut_off_has_no_usage() -> None:
    from pytest_crewguard.usage import bedrock

    folded = bedrock.fold_stream([{"type": "message_start", **ANTHROPIC_START}, TEXT_DELTA])
    assert bedrock.invoke_usage(folded, {}) is None
    whole = bedrock.fold_stream([{"type": "message_start", **ANTHROPIC_START}, TEXT_DELTA, ANTHROPIC_END])
    assert bedrock.invoke_usage(whole, {}) == Usage(5000, 321)


def _gemini_chunk(finished: bool, out: int | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": "Hi"}]}}
    if finished:
        candidate["finishReason"] = "STOP"
    metadata: dict[str, Any] = {"promptTokenCount": 165, "totalTokenCount": 165 + (out or 0)}
    if out is not None:
        metadata["candidatesTokenCount"] = out
    return {"candidates": [candidate], "usageMetadata": metadata, "modelVersion": "gemini-2.5-flash"}


def test_a_gemini_stream_cut_off_before_its_finish_reason_has_no_usage() -> None:
    # Its first chunk's usageMetadata has no candidatesTokenCount: read as 0 output tokens.
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    headers = {"Content-Type": "text/event-stream"}

    def stream(*chunks: dict[str, Any]) -> bytes:
        return "".join(f"data: {json.dumps(c)}\r\n\r\n" for c in chunks).encode()

    cut = stream(_gemini_chunk(False, None))
    whole = stream(_gemini_chunk(False, None), _gemini_chunk(True, 13))
    assert classify_exchange("POST", url, b"{}", 200, headers, cut).usage is None
    assert classify_exchange("POST", url, b"{}", 200, headers, whole).usage == Usage(165, 13)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # A gateway that left the reasoning out of the output count, but not out of the total.
        ({"prompt_tokens": 21, "completion_tokens": 0, "total_tokens": 81,
          "completion_tokens_details": {"reasoning_tokens": 60}}, Usage(21, 60, reasoning_tokens=60)),
        # Nothing to tell the output by: unknown, not 0.
        ({"prompt_tokens": 21, "completion_tokens": 0, "completion_tokens_details": {"reasoning_tokens": 60}},
         None),
    ],
)
def test_reasoning_over_the_output_count_is_not_clamped_away(usage: dict[str, Any], expected: Any) -> None:
    body = json.dumps({"model": "gemini-2.5-flash", "choices": [], "usage": usage}).encode()
    url = "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions"
    ex = classify_exchange("POST", url, MODEL_REQUEST, 200, {"Content-Type": "application/json"}, body)
    assert ex.usage == expected
