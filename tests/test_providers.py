"""Every provider in CrewAI's recordings, counted and priced: real responses from the sample in
``tests/data/crewai_cassettes`` (CrewAI's own cassettes, MIT) plus hand-built bodies for shapes
the sample lacks (one-hour cache writes, Bedrock ConverseStream, Ollama's chat stream).

Every expected cost is hand arithmetic from the model's list price, in USD per million tokens,
written out next to it: a wrong rate for any token kind fails here, whatever genai-prices says.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from pytest_crewguard.pricing import PriceTable
from pytest_crewguard.usage import Usage, classify_exchange
from tests.crewai_cassettes import recorded

PRICES = PriceTable()
MICRO = 1e-6  # hand arithmetic below is in micro-dollars (tokens x USD per million tokens)


def _cost(provider: str | None, model: str | None, usage: Usage, table: PriceTable = PRICES) -> float | None:
    return table.cost(provider, model, usage)


RECORDED = [
    # OpenAI Chat Completions, gpt-4o (2024-08-06): input $2.50, output $10.
    pytest.param(
        "llms/openai/test_openai_completion_call_returns_usage_metrics.yaml", 0,
        "openai", "chat", "gpt-4o-2024-08-06", False, Usage(173, 116),
        173 * 2.50 + 116 * 10.00, id="openai-chat",
    ),
    # Streamed with include_usage; gpt-4.1: input $2, cached input $0.50, output $8.
    pytest.param(
        "llms/openai/test_openai_streaming_cached_prompt_tokens.yaml", 1,
        "openai", "chat", "gpt-4.1-2025-04-14", True, Usage(1144, 3, cached_tokens=1024),
        (1144 - 1024) * 2.00 + 1024 * 0.50 + 3 * 8.00, id="openai-chat-stream-cached",
    ),
    # o3-mini: input $1.10, output $4.40; its 64 reasoning tokens are output tokens.
    pytest.param(
        "test_o3_mini_reasoning_effort_high.yaml", 0,
        "openai", "chat", "o3-mini-2025-01-31", False, Usage(13, 81, reasoning_tokens=64),
        13 * 1.10 + 81 * 4.40, id="openai-chat-reasoning",
    ),
    # Responses API, streamed (usage in response.completed); gpt-4o-mini: $0.15 / $0.60.
    pytest.param(
        "llms/openai/test_openai_responses_api_streaming.yaml", 0,
        "openai", "responses", "gpt-4o-mini-2024-07-18", True, Usage(27, 8),
        27 * 0.15 + 8 * 0.60, id="openai-responses-stream",
    ),
    # Anthropic Messages; claude-sonnet-4-5: input $3, cache read $0.30, output $15.
    # input_tokens 3 + cache_read_input_tokens 1217 = 1220.
    pytest.param(
        "llms/anthropic/test_anthropic_cached_prompt_tokens.yaml", 0,
        "anthropic", "messages", "claude-sonnet-4-5-20250929", False, Usage(1220, 5, cached_tokens=1217),
        3 * 3.00 + 1217 * 0.30 + 5 * 15.00, id="anthropic-cache-read",
    ),
    # Streamed: message_start has the input side, the last message_delta the output count.
    pytest.param(
        "llms/anthropic/test_anthropic_streaming_cached_prompt_tokens.yaml", 1,
        "anthropic", "messages", "claude-sonnet-4-5-20250929", True, Usage(1220, 6, cached_tokens=1217),
        3 * 3.00 + 1217 * 0.30 + 6 * 15.00, id="anthropic-stream-cache-read",
    ),
    # Gemini generateContent: candidates 8 + thoughts 25 = 33 output tokens. The price data
    # bills this preview's thoughts at its output price: input $0.15, output $0.60.
    pytest.param(
        "test_gemini_models[gemini-gemini-2.0-flash-thinking-exp-01-21].yaml", 0,
        "google", "generate_content", "gemini-2.5-flash-preview-05-20", False,
        Usage(8, 33, reasoning_tokens=25),
        8 * 0.15 + (8 + 25) * 0.60, id="gemini-thoughts",
    ),
    # streamGenerateContent (alt=sse); priced as gemini-2.0-flash: input $0.10, output $0.40.
    pytest.param(
        "llms/google/test_google_async_streaming_returns_usage_metrics.yaml", 0,
        "google", "generate_content", "gemini-2.0-flash-exp", True, Usage(163, 13),
        163 * 0.10 + 13 * 0.40, id="gemini-stream",
    ),
    # Listed at $0 by the price data.
    pytest.param(
        "test_gemma3[gemini-gemma-3-27b-it].yaml", 0,
        "google", "generate_content", "gemma-3-27b-it", False, Usage(8, 0), 0.0, id="gemini-free",
    ),
    # Azure OpenAI Responses (the deployment echoed as the model); gpt-5.2: $1.75 / $14.
    pytest.param(
        "llms/azure/TestAzureResponsesCall.test_call_delegates_to_responses.yaml", 0,
        "azure", "responses", "gpt-5.2-chat", False, Usage(12, 22),
        12 * 1.75 + 22 * 14.00, id="azure-responses",
    ),
    # Azure OpenAI chat, streamed with usage; gpt-4o-mini: $0.15 / $0.60.
    pytest.param(
        "llms/azure/test_azure_streaming_completion.yaml", 0,
        "azure", "chat", "gpt-4o-mini-2024-07-18", True, Usage(9, 10),
        9 * 0.15 + 10 * 0.60, id="azure-chat-stream",
    ),
    # Bedrock Converse, model only in the URL; Claude Sonnet 4.6 through the "us." regional
    # inference profile: input $3.30, output $16.50 (the 10% regional premium).
    pytest.param(
        "llms/bedrock/test_bedrock_async_basic_call.yaml", 0,
        "bedrock", "converse", "us.anthropic.claude-sonnet-4-6", False, Usage(9, 24),
        9 * 3.30 + 24 * 16.50, id="bedrock-converse",
    ),
    # OpenRouter; deepseek/deepseek-r1 at OpenRouter from 2026-10-19: input $0.70, output $2.50.
    pytest.param(
        "test_deepseek_r1_with_open_router.yaml", 0,
        "openrouter", "chat", "deepseek/deepseek-r1", False, Usage(10, 261),
        10 * 0.70 + 261 * 2.50, id="openrouter",
    ),
    # Ollama's native /api/generate: prompt_eval_count / eval_count; a local model costs nothing.
    pytest.param(
        "utilities/test_converter_with_llama3_1_model.yaml", 0,
        "ollama", "ollama_generate", "llama3.1", False, Usage(67, 22), 0.0, id="ollama-generate",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("file", "index", "provider", "api", "model", "streamed", "usage", "micro"), RECORDED
)
def test_recorded_call_is_counted_and_priced(
    file: str, index: int, provider: str, api: str, model: str, streamed: bool, usage: Usage, micro: float
) -> None:
    ex = recorded(file, index).classify()
    assert (ex.kind, ex.provider, ex.api, ex.model, ex.streamed) == ("llm", provider, api, model, streamed)
    assert ex.usage == usage
    assert _cost(ex.provider, ex.model, usage) == pytest.approx(micro * MICRO, abs=1e-12)


def test_free_models_are_known_free_not_unpriced() -> None:
    assert PRICES.is_free("google", "gemma-3-27b-it")
    assert PRICES.is_free("ollama", "llama3.1")
    assert not PRICES.is_free("openai", "gpt-4o-mini")
    assert not PRICES.is_free("openai", "my-private-finetune")  # unpriced is not free
    assert PRICES.cost("openai", "my-private-finetune", Usage(1, 1)) is None


def test_stream_recorded_without_usage_has_no_usage() -> None:
    ex = recorded("utilities/test_llm_emits_stream_chunk_events.yaml", 0).classify()
    assert (ex.kind, ex.provider, ex.model, ex.streamed) == ("llm", "openai", "gpt-3.5-turbo-0125", True)
    assert ex.usage is None


# --- shapes the sample lacks ----------------------------------------------------------------

ANTHROPIC_1H = {
    "input_tokens": 100,
    "cache_read_input_tokens": 1_000,
    "cache_creation_input_tokens": 3_000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1_000, "ephemeral_1h_input_tokens": 2_000},
    "output_tokens": 300,
}
# claude-haiku-4-5: input $1, cache read $0.10, 5-minute write $1.25, 1-hour write $2, output $5.
HAIKU_1H_MICRO = 100 * 1.00 + 1_000 * 0.10 + 1_000 * 1.25 + 2_000 * 2.00 + 300 * 5.00  # 6,950


def test_anthropic_one_hour_cache_writes_at_their_own_price() -> None:
    body = json.dumps({"model": "claude-haiku-4-5", "usage": ANTHROPIC_1H})
    ex = classify_exchange("POST", "https://api.anthropic.com/v1/messages", None, 200, {}, body)
    assert ex.usage == Usage(
        4_100, 300, cached_tokens=1_000, cache_write_tokens=3_000, cache_write_1h_tokens=2_000
    )
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(HAIKU_1H_MICRO * MICRO, abs=1e-12)


def test_anthropic_one_hour_cache_writes_in_a_stream() -> None:
    start = {
        "type": "message_start",
        "message": {"model": "claude-haiku-4-5", "usage": {**ANTHROPIC_1H, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 300}}
    body = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in (start, delta))
    headers = {"content-type": ["text/event-stream"]}
    ex = classify_exchange("POST", "https://api.anthropic.com/v1/messages", None, 200, headers, body)
    assert ex.streamed and ex.usage is not None
    assert ex.usage.cache_write_1h_tokens == 2_000
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(HAIKU_1H_MICRO * MICRO, abs=1e-12)


def test_anthropic_only_the_split_reported() -> None:
    usage = {"input_tokens": 10, "cache_creation": {"ephemeral_1h_input_tokens": 500}, "output_tokens": 1}
    ex = classify_exchange(
        "POST", "https://api.anthropic.com/v1/messages", None, 200, {}, json.dumps({"usage": usage})
    )
    assert ex.usage == Usage(510, 1, cache_write_tokens=500, cache_write_1h_tokens=500)


def test_gemini_thoughts_and_cache_reads_by_kind() -> None:
    # gemini-2.5-flash: input $0.30, cached input $0.03, output (thoughts included) $2.50.
    meta = {
        "promptTokenCount": 557,
        "cachedContentTokenCount": 330,
        "candidatesTokenCount": 73,
        "thoughtsTokenCount": 70,
    }
    body = json.dumps({"usageMetadata": meta, "modelVersion": "gemini-2.5-flash"})
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    ex = classify_exchange("POST", url, None, 200, {}, body)
    assert ex.usage == Usage(557, 143, cached_tokens=330, reasoning_tokens=70)
    micro = (557 - 330) * 0.30 + 330 * 0.03 + (73 + 70) * 2.50  # 435.5
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(micro * MICRO, abs=1e-12)


def _eventstream_frame(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload).encode()
    return struct.pack(">III", 16 + len(data), 0, 0) + data + b"\0\0\0\0"


def test_bedrock_converse_stream_counted_and_priced() -> None:
    usage = {"inputTokens": 20, "outputTokens": 5, "cacheReadInputTokens": 100}
    events = [
        {"role": "assistant"},
        {"contentBlockIndex": 0, "delta": {"text": "Hi"}},
        {"stopReason": "end_turn"},
        {"metrics": {"latencyMs": 300}, "usage": usage},
    ]
    body = b"".join(_eventstream_frame(e) for e in events)
    url = (
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic.claude-sonnet-4-6/converse-stream"
    )
    headers = {"Content-Type": ["application/vnd.amazon.eventstream"]}
    ex = classify_exchange("POST", url, None, 200, headers, body)
    assert (ex.provider, ex.api, ex.model, ex.streamed) == (
        "bedrock",
        "converse",
        "us.anthropic.claude-sonnet-4-6",
        True,
    )
    assert ex.usage == Usage(120, 5, cached_tokens=100)
    # input $3.30, cache read $0.33, output $16.50 (us. regional profile)
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(
        (20 * 3.30 + 100 * 0.33 + 5 * 16.50) * MICRO
    )


def test_bedrock_converse_one_hour_cache_writes() -> None:
    usage = {
        "inputTokens": 10,
        "cacheReadInputTokens": 100,
        "cacheWriteInputTokens": 1_000,
        "cacheDetails": [{"ttl": "1h", "inputTokens": 1_000}],
        "outputTokens": 20,
    }
    url = "https://bedrock-runtime.us-west-2.amazonaws.com/model/us.anthropic.claude-sonnet-4-6/converse"
    ex = classify_exchange("POST", url, None, 200, {}, json.dumps({"usage": usage}))
    assert ex.usage == Usage(
        1_110, 20, cached_tokens=100, cache_write_tokens=1_000, cache_write_1h_tokens=1_000
    )
    # input $3.30, cache read $0.33, 1-hour cache write $6.60, output $16.50
    micro = 10 * 3.30 + 100 * 0.33 + 1_000 * 6.60 + 20 * 16.50  # 6,996
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(micro * MICRO, abs=1e-12)


def test_ollama_chat_is_free_unless_priced(tmp_path: Path) -> None:
    message = {"role": "assistant", "content": "hi"}
    body = json.dumps(
        {"model": "llama3.2", "message": message, "done": True, "prompt_eval_count": 26, "eval_count": 2}
    )
    ex = classify_exchange("POST", "http://localhost:11434/api/chat", None, 200, {}, body)
    assert ex.usage == Usage(26, 2)
    assert _cost(ex.provider, ex.model, ex.usage) == 0.0
    prices = tmp_path / "prices.yaml"
    prices.write_text("llama3.2: {input: 0.10, output: 0.20}\n", encoding="utf-8")
    priced = PriceTable.from_file(prices)
    assert _cost(ex.provider, ex.model, ex.usage, priced) == pytest.approx((26 * 0.10 + 2 * 0.20) * MICRO)
    assert not priced.is_free(ex.provider, ex.model)


AZURE_DEPLOYMENT_URL = (
    "https://r.openai.azure.com/openai/deployments/prod-chat/chat/completions?api-version=2024-10-21"
)


def test_azure_deployment_without_model_in_the_response_is_unpriced_until_aliased(tmp_path: Path) -> None:
    body = '{"choices": [], "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}'
    ex = classify_exchange("POST", AZURE_DEPLOYMENT_URL, None, 200, {}, body)
    assert (ex.provider, ex.model, ex.usage) == ("azure", "prod-chat", Usage(1000, 100))
    assert _cost(ex.provider, ex.model, ex.usage) is None
    prices = tmp_path / "prices.yaml"
    prices.write_text("aliases:\n  prod-chat: gpt-4o-mini\n", encoding="utf-8")
    aliased = PriceTable.from_file(prices)
    # gpt-4o-mini: $0.15 / $0.60
    assert _cost(ex.provider, ex.model, ex.usage, aliased) == pytest.approx(
        (1000 * 0.15 + 100 * 0.60) * MICRO
    )


def test_openrouter_llama_is_priced_at_openrouter() -> None:
    # meta-llama/llama-3.2-3b-instruct at OpenRouter from 2026-10-19: input $0.0509, output $0.335.
    usage = Usage(1_000, 100)
    micro = 1_000 * 0.0509 + 100 * 0.335
    assert _cost("openrouter", "meta-llama/llama-3.2-3b-instruct", usage) == pytest.approx(micro * MICRO)


def test_bedrock_model_given_as_an_inference_profile_arn() -> None:
    arn = (
        "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-6"
    )
    url = f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{arn}/converse"
    body = '{"usage": {"inputTokens": 9, "outputTokens": 24}}'
    ex = classify_exchange("POST", url, None, 200, {}, body)
    assert (ex.provider, ex.api, ex.model) == ("bedrock", "converse", "us.anthropic.claude-sonnet-4-6")
    assert _cost(ex.provider, ex.model, Usage(9, 24)) == pytest.approx((9 * 3.30 + 24 * 16.50) * MICRO)


# --- fees beside the tokens -------------------------------------------------------------------


def test_a_web_search_the_model_made_is_priced_beside_its_tokens() -> None:
    # The Responses API's web_search_call: $10 per 1,000 searches at gpt-4o-mini. It was left
    # out, and the call reported at 1/65 of its price.
    ex = recorded("llms/openai/test_openai_responses_api_with_web_search.yaml", 0).classify()
    assert (ex.usage and ex.usage.web_searches) == 1
    tokens_micro = 312 * 0.15 + 181 * 0.60
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx((tokens_micro + 10_000) * MICRO, abs=1e-12)


def test_gemini_audio_input_is_priced_at_its_audio_rate() -> None:
    # 25 of the 39 input tokens are audio: $0.70 per million at gemini-2.0-flash, not $0.10.
    ex = recorded("llms/TestGeminiMultimodalIntegration.test_analyze_audio_file.yaml", 0).classify()
    assert ex.usage is not None and (ex.usage.input_tokens, ex.usage.input_audio_tokens) == (39, 25)
    micro = 14 * 0.10 + 25 * 0.70 + 7 * 0.40
    assert _cost(ex.provider, ex.model, ex.usage) == pytest.approx(micro * MICRO, abs=1e-12)


def _classified(url: str, body: dict[str, Any]) -> Any:
    headers = {"Content-Type": ["application/json"]}
    request = json.dumps({"model": body["model"], "messages": []}).encode()
    return classify_exchange("POST", url, request, 200, headers, json.dumps(body).encode())


def test_anthropic_server_web_searches_and_openai_priority_tier_are_priced() -> None:
    anthropic = _classified("https://api.anthropic.com/v1/messages", {
        "model": "claude-sonnet-4-5", "content": [], "stop_reason": "end_turn",
        "usage": {"input_tokens": 1_000, "output_tokens": 100, "server_tool_use": {"web_search_requests": 3}},
    })
    assert _cost("anthropic", "claude-sonnet-4-5", anthropic.usage) == pytest.approx(
        (1_000 * 3.00 + 100 * 15.00 + 3 * 10_000) * MICRO, abs=1e-12
    )
    priority = _classified("https://api.openai.com/v1/chat/completions", {
        "model": "gpt-5", "choices": [], "service_tier": "priority",
        "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000},
    })
    assert priority.usage.service_tier == "priority"
    assert _cost("openai", "gpt-5", priority.usage) == pytest.approx(22.50)  # standard: 11.25
