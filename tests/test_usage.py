"""Tests of :mod:`pytest_crewguard.usage` against the real cassettes of CrewAI's own test suite.

The peer cassettes (``../shared/peer-cassettes/crewai`` from the project root) hold 1,503
recorded interactions; the corpus tests classify every one of them. Run with ``-s`` to see the
counts per provider.
"""

from __future__ import annotations

import base64
import collections
import functools
import gzip
import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from pytest_crewguard import usage as usage_module
from pytest_crewguard.usage import Exchange, Usage, classify_exchange

PEER = Path(__file__).resolve().parents[1].parent / "shared" / "peer-cassettes" / "crewai"
needs_peer = pytest.mark.skipif(
    not PEER.is_dir(), reason=f"peer cassettes not found at {PEER} (CI has them at ../shared)"
)

# A JSON key "usage" or "usageMetadata" holding an object (not null): the body reports usage.
USAGE_FIELD = re.compile(r'"usage(?:Metadata)?"\s*:\s*\{')
# Hosts crewai contacted while recording that are not LLM providers.
NON_LLM_HOSTS = ("crewai.com", "agentops.ai", "scarf.sh", "pypi.org", "exa.ai", "github.io", "oauth2.")


@dataclass(frozen=True)
class Recorded:
    """One interaction of a vcrpy cassette."""

    file: str
    index: int
    method: str
    uri: str
    request_body: bytes | str | None
    status: int
    headers: dict[str, list[str]]
    body: bytes | str | None

    def classify(self) -> Exchange:
        return classify_exchange(
            self.method, self.uri, self.request_body, self.status, self.headers, self.body
        )


def _load(path: Path) -> list[Recorded]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is 10x faster
    with path.open(encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=loader)
    recorded = []
    for index, item in enumerate(data.get("interactions") or []):
        request, response = item["request"], item["response"]
        body = response.get("body")
        # vcrpy stores {"string": ...}; bytes appear as !!binary, which yaml decodes to bytes.
        body = body.get("string") if isinstance(body, dict) else body
        recorded.append(
            Recorded(
                file=path.relative_to(PEER).as_posix(),
                index=index,
                method=request["method"],
                uri=request["uri"],
                request_body=request.get("body"),
                status=response["status"]["code"],
                headers=response.get("headers") or {},
                body=body,
            )
        )
    return recorded


@functools.cache
def _corpus() -> tuple[tuple[Recorded, Exchange], ...]:
    items = [rec for path in sorted(PEER.rglob("*.yaml")) for rec in _load(path)]
    return tuple((rec, rec.classify()) for rec in items)


def _recorded(file: str, index: int) -> Recorded:
    return _load(PEER / file)[index]


def _text(body: bytes | str | None) -> str:
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else body or ""


# --- the whole corpus ------------------------------------------------------------------------


@needs_peer
def test_corpus_counts_llm_exchanges_with_usage() -> None:
    corpus = _corpus()
    assert len(corpus) > 1_400  # 589 files, 1,503 interactions
    table: collections.Counter[tuple[str, str | None, str]] = collections.Counter()
    for _, ex in corpus:
        table[(ex.kind, ex.provider, "usage" if ex.usage else "no usage")] += 1
        if ex.streamed:
            table[(ex.kind, ex.provider, "streamed")] += 1
    print("\nkind       provider     what        count")
    for (kind, provider, what), count in sorted(table.items(), key=lambda kv: str(kv[0])):
        print(f"{kind:<10} {provider or '-':<12} {what:<10} {count:>6}")
    with_usage = sum(1 for _, ex in corpus if ex.kind == "llm" and ex.usage is not None)
    print(f"llm exchanges: {sum(1 for _, ex in corpus if ex.kind == 'llm')}, with usage: {with_usage}")
    assert with_usage >= 1_150
    providers = {ex.provider for _, ex in corpus if ex.kind == "llm" and ex.usage is not None}
    assert providers == {"openai", "anthropic", "google", "azure", "bedrock", "openrouter"}


@needs_peer
def test_corpus_every_reported_usage_block_is_read() -> None:
    checked = 0
    for rec, ex in _corpus():
        if ex.kind != "llm" or rec.status != 200 or not USAGE_FIELD.search(_text(rec.body)):
            continue
        checked += 1
        assert ex.usage is not None, f"{rec.file}#{rec.index}: usage block not read"
        assert ex.usage.input_tokens > 0, f"{rec.file}#{rec.index}: {ex.usage}"
        assert ex.model, f"{rec.file}#{rec.index}: no model"
    assert checked >= 1_150


@needs_peer
def test_corpus_telemetry_and_tracing_are_never_llm() -> None:
    seen = 0
    for rec, ex in _corpus():
        host = urlsplit(rec.uri).hostname or ""
        if any(part in host for part in NON_LLM_HOSTS) or "/tracing" in rec.uri:
            seen += 1
            assert ex.kind == "other", f"{rec.file}#{rec.index}: {rec.uri} -> {ex}"
            assert ex.usage is None
    assert seen >= 150  # telemetry.crewai.com, app.crewai.com, localhost tracing, agentops, ...


@needs_peer
def test_corpus_streams_are_detected() -> None:
    streamed = [(rec, ex) for rec, ex in _corpus() if ex.kind == "llm" and ex.streamed]
    assert len(streamed) >= 30
    assert {ex.provider for _, ex in streamed} == {"openai", "anthropic", "google", "azure"}
    for rec, ex in _corpus():
        content_type = " ".join(rec.headers.get("Content-Type", rec.headers.get("content-type", [])))
        if ex.kind == "llm" and "event-stream" in content_type:
            assert ex.streamed, f"{rec.file}#{rec.index}"
    # A stream recorded with stream_options.include_usage carries usage in its last chunk.
    assert sum(1 for _, ex in streamed if ex.usage is not None) >= 30


@needs_peer
def test_corpus_genai_prices_and_hand_extraction_agree() -> None:
    """The hand-written fallback gives the same numbers as genai-prices wherever both apply."""
    compared = 0
    for rec, ex in _corpus():
        if ex.usage is None or ex.api not in usage_module._GENAI_FLAVOR:
            continue
        content_type = " ".join(rec.headers.get("Content-Type", rec.headers.get("content-type", [])))
        _, data = usage_module._decode_response(ex.api, content_type.lower(), rec.body)
        block = data.get(usage_module._USAGE_KEY.get(ex.api, "usage"))
        if block is None:  # Vertex AI :predict embeddings have no usage block
            continue
        by_library = usage_module._usage_from_genai(ex.api, block)
        assert by_library is not None, f"{rec.file}#{rec.index}"
        assert by_library == usage_module._usage_by_hand(ex.api, block), f"{rec.file}#{rec.index}"
        assert by_library == ex.usage
        compared += 1
    assert compared >= 1_150


# --- specific interactions, numbers read from the files --------------------------------------

TARGETED = [
    pytest.param(
        "llms/openai/test_openai_completion_call_returns_usage_metrics.yaml", 0,
        "openai", "chat", "gpt-4o-2024-08-06", Usage(173, 116), id="openai-chat",
    ),
    pytest.param(
        "llms/openai/test_openai_completions_cached_prompt_tokens.yaml", 0,
        "openai", "chat", "gpt-4.1-2025-04-14", Usage(1144, 2, cached_tokens=1024), id="openai-chat-cached",
    ),
    pytest.param(
        "test_o3_mini_reasoning_effort_high.yaml", 0,
        "openai", "chat", "o3-mini-2025-01-31", Usage(13, 81, reasoning_tokens=64), id="openai-reasoning",
    ),
    pytest.param(
        "llms/openai/test_openai_responses_api_cached_prompt_tokens.yaml", 1,
        "openai", "responses", "gpt-4.1-2025-04-14", Usage(1144, 4, cached_tokens=1024),
        id="openai-responses",
    ),
    pytest.param(
        "test_using_memory.yaml", 2,
        "openai", "embeddings", "text-embedding-3-small", Usage(522, 0), id="openai-embeddings",
    ),
    pytest.param(  # input_tokens 3 + cache_read_input_tokens 1217
        "llms/anthropic/test_anthropic_cached_prompt_tokens.yaml", 0,
        "anthropic", "messages", "claude-sonnet-4-5-20250929", Usage(1220, 5, cached_tokens=1217),
        id="anthropic-cache-read",
    ),
    pytest.param(  # input_tokens 3 + cache_creation_input_tokens 2091
        "TestAgentMultimodalAnthropic.test_mixed_files[anthropic-claude-3-5-haiku-20241022].yaml", 0,
        "anthropic", "messages", "claude-3-5-haiku-20241022", Usage(2094, 127, cache_write_tokens=2091),
        id="anthropic-cache-write",
    ),
    # Asked for 2.0-flash-thinking-exp, served gemini-2.5-flash-preview; candidates 8 + thoughts 25.
    pytest.param(
        "test_gemini_models[gemini-gemini-2.0-flash-thinking-exp-01-21].yaml", 0,
        "google", "generate_content", "gemini-2.5-flash-preview-05-20", Usage(8, 33, reasoning_tokens=25),
        id="gemini-thoughts",
    ),
    # promptTokenCount 557 includes cachedContentTokenCount 330; candidates 73 + thoughts 70.
    pytest.param(
        "utilities/TestGeminiStructuredPlanning.test_gemini_research_workflow_generates_steps.yaml", 4,
        "google", "generate_content", "gemini-2.5-flash",
        Usage(557, 143, cached_tokens=330, reasoning_tokens=70),
        id="gemini-cached",
    ),
    pytest.param(
        "rag/embeddings/test_crew_memory_with_google_vertex_project_id.yaml", 2,
        "google", "embeddings", "gemini-embedding-001", Usage(12, 0), id="vertex-embeddings",
    ),
    pytest.param(
        "llms/azure/test_azure_async_non_streaming.yaml", 0,
        "azure", "chat", "gpt-4o-mini-2024-07-18", Usage(9, 10), id="azure-chat",
    ),
    pytest.param(
        "llms/azure/TestAzureResponsesCall.test_call_delegates_to_responses.yaml", 0,
        "azure", "responses", "gpt-5.2-chat", Usage(12, 22), id="azure-responses",
    ),
    pytest.param(  # the model is only in the URL: /model/us.anthropic.claude-sonnet-4-6/converse
        "llms/bedrock/test_bedrock_async_basic_call.yaml", 0,
        "bedrock", "converse", "us.anthropic.claude-sonnet-4-6", Usage(9, 24), id="bedrock-converse",
    ),
    pytest.param(
        "test_deepseek_r1_with_open_router.yaml", 0,
        "openrouter", "chat", "deepseek/deepseek-r1", Usage(10, 261), id="openrouter",
    ),
]  # fmt: skip


@needs_peer
@pytest.mark.parametrize(("file", "index", "provider", "api", "model", "expected"), TARGETED)
def test_targeted_interaction(
    file: str, index: int, provider: str, api: str, model: str, expected: Usage
) -> None:
    ex = _recorded(file, index).classify()
    assert ex.kind == ("embedding" if api == "embeddings" else "llm")
    assert (ex.provider, ex.api, ex.model) == (provider, api, model)
    assert ex.usage == expected
    assert ex.streamed is False


STREAMS = [
    pytest.param(  # usage only in the last chunk (stream_options.include_usage)
        "llms/openai/test_openai_streaming_returns_usage_metrics.yaml", 0,
        "openai", "chat", "gpt-4o-mini-2024-07-18", Usage(168, 137), id="openai-chat",
    ),
    pytest.param(
        "llms/openai/test_openai_streaming_cached_prompt_tokens.yaml", 1,
        "openai", "chat", "gpt-4.1-2025-04-14", Usage(1144, 3, cached_tokens=1024), id="openai-chat-cached",
    ),
    pytest.param(  # message_start says output_tokens 1; the last message_delta says 85
        "llms/TestAnthropicToolCallStreaming.test_anthropic_streaming_emits_tool_call_events.yaml", 0,
        "anthropic", "messages", "claude-3-5-haiku-20241022", Usage(351, 85), id="anthropic",
    ),
    pytest.param(
        "llms/anthropic/test_anthropic_streaming_cached_prompt_tokens.yaml", 1,
        "anthropic", "messages", "claude-sonnet-4-5-20250929", Usage(1220, 6, cached_tokens=1217),
        id="anthropic-cached",
    ),
    pytest.param(  # usage in the response.completed event
        "llms/openai/test_openai_responses_api_streaming.yaml", 0,
        "openai", "responses", "gpt-4o-mini-2024-07-18", Usage(27, 8), id="openai-responses",
    ),
    pytest.param(
        "llms/google/test_google_async_streaming_returns_usage_metrics.yaml", 0,
        "google", "generate_content", "gemini-2.0-flash-exp", Usage(163, 13), id="gemini-sse",
    ),
    pytest.param(
        "llms/azure/test_azure_streaming_returns_usage_metrics.yaml", 0,
        "azure", "chat", "gpt-4o-mini-2024-07-18", Usage(168, 158), id="azure",
    ),
    pytest.param(  # streamed without include_usage: no usage block at all
        "TestStreamingCrewIntegration.test_basic_crew_streaming_from_docs.yaml", 0,
        "openai", "chat", "gpt-4.1-mini-2025-04-14", None, id="openai-no-usage",
    ),
]  # fmt: skip


@needs_peer
@pytest.mark.parametrize(("file", "index", "provider", "api", "model", "expected"), STREAMS)
def test_streamed_interaction(
    file: str, index: int, provider: str, api: str, model: str, expected: Usage | None
) -> None:
    ex = _recorded(file, index).classify()
    assert ex.kind == "llm"
    assert ex.streamed is True
    assert (ex.provider, ex.api, ex.model) == (provider, api, model)
    assert ex.usage == expected


@needs_peer
def test_gemini_stream_as_json_array_equals_sse() -> None:
    """Without ``alt=sse`` Gemini streams one JSON array; same chunks, same usage."""
    rec = _recorded("llms/google/test_google_async_streaming_returns_usage_metrics.yaml", 0)
    chunks = [json.loads(line[5:]) for line in _text(rec.body).splitlines() if line.startswith("data:")]
    uri = rec.uri.replace("?alt=sse", "")
    ex = classify_exchange("POST", uri, rec.request_body, 200, {}, json.dumps(chunks))
    assert ex.streamed is True
    assert ex.usage == Usage(163, 13)


@needs_peer
def test_gzip_bytes_body_is_decompressed() -> None:
    rec = _recorded("llms/openai/test_openai_completion_call_returns_usage_metrics.yaml", 0)
    body = gzip.compress(_text(rec.body).encode())
    ex = classify_exchange("POST", rec.uri, None, 200, {"Content-Encoding": ["gzip"]}, body)
    assert ex.usage == Usage(173, 116)
    assert ex.model == "gpt-4o-2024-08-06"


@needs_peer
def test_error_response_is_llm_without_usage() -> None:
    rec = _recorded("llms/google/test_google_streaming_returns_usage_metrics.yaml", 0)
    assert rec.status == 400
    ex = rec.classify()
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
        ("http://localhost:11434/api/generate", "other", None, None),
    ],
)
def test_routing_by_path_and_host(url: str, kind: str, provider: str | None, api: str | None) -> None:
    ex = classify_exchange("POST", url, None, 200, {}, None)
    assert (ex.kind, ex.provider, ex.api) == (kind, provider, api)


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
