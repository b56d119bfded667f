"""Which provider endpoint a request went to: from the URL path, and the host where
providers share paths."""

from __future__ import annotations

import re

from .types import Kind

Route = tuple[Kind, str, str, str | None]  # kind, provider, api, model named by the URL

_GOOGLE_METHOD = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)$")
_BEDROCK_OP = re.compile(r"[a-z_-]+")
_AZURE_DEPLOYMENT = re.compile(r"/deployments/(?P<model>[^/]+)/")
OLLAMA_PORT = 11434  # Ollama's default port: its OpenAI-compatible paths are Ollama's too


def _bedrock_model_op(path: str) -> tuple[str, str] | None:
    """``/model/<model id>/<operation>``: the model id may hold slashes (an ARN). Split by hand,
    not with a pattern, which backtracked on a long path."""
    start = path.find("/model/")
    if start < 0:
        return None
    model, slash, op = path[start + len("/model/") :].rpartition("/")
    if not slash or not model or _BEDROCK_OP.fullmatch(op) is None:
        return None
    return model, op


def host_provider(host: str, port: int | None) -> str | None:
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
    if port == OLLAMA_PORT or host == "ollama.com" or host.endswith(".ollama.com"):
        return "ollama"
    return _COMPATIBLE_HOSTS.get(host)


# Providers serving OpenAI's API shape under their own prices, by the ids genai-prices lists
# them under: their models (gpt-oss, llama, ...) must not be priced at OpenAI's rates. Any other
# host speaking OpenAI's API (a gateway, a proxy) is priced by model name, as OpenAI's.
_COMPATIBLE_HOSTS = {
    "api.groq.com": "groq",
    "api.cerebras.ai": "cerebras",
    "api.together.xyz": "together",
    "api.fireworks.ai": "fireworks",
    "api.deepseek.com": "deepseek",
    "api.mistral.ai": "mistral",
    "api.x.ai": "x-ai",
    "api.perplexity.ai": "perplexity",
    "api.novita.ai": "novita",
    "api.z.ai": "zai",
    "inference.baseten.co": "baseten",
}


def route(method: str, host: str, port: int | None, path: str) -> Route | None:
    """``(kind, provider, api, model from the URL)`` for a provider endpoint, else ``None``."""
    if method != "POST":  # every metered provider call is a POST; GETs are retrievals/listings
        return None
    provider = host_provider(host, port)

    if provider == "google" and (m := _GOOGLE_METHOD.search(path)):
        return _google(m["model"], m["method"], path)
    if provider == "bedrock" and (model_op := _bedrock_model_op(path)):
        return _bedrock(*model_op)

    # Ollama's native API, on any host (a remote Ollama server is common).
    if path.endswith("/api/chat"):
        return "llm", "ollama", "ollama_chat", None
    if path.endswith("/api/generate"):
        return "llm", "ollama", "ollama_generate", None
    if path.endswith(("/api/embed", "/api/embeddings")):
        return "embedding", "ollama", "ollama_embeddings", None

    url_model = m["model"] if provider == "azure" and (m := _AZURE_DEPLOYMENT.search(path)) else None
    # Any other host (including 127.0.0.1 test servers) is told apart by its path alone.
    for suffix, kind, default_provider, api in _PATH_ROUTES:
        if path.endswith(suffix):
            return kind, provider or default_provider, api, url_model
    return None


# (path suffix, kind, provider when the host does not say, API), first match wins: the longer
# suffixes come before the ones they end with.
_PATH_ROUTES: tuple[tuple[str, Kind, str, str], ...] = (
    ("/responses/input_tokens", "preflight", "openai", "count_tokens"),
    ("/messages/count_tokens", "preflight", "anthropic", "count_tokens"),
    ("/chat/completions", "llm", "openai", "chat"),
    ("/completions", "llm", "openai", "completions"),  # legacy text completions, chat's usage shape
    ("/responses", "llm", "openai", "responses"),
    ("/messages", "llm", "anthropic", "messages"),
    ("/embeddings", "embedding", "openai", "embeddings"),
)


def _google(model: str, verb: str, path: str) -> Route | None:
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


def _bedrock(model: str, op: str) -> Route | None:
    if model.startswith("arn:") and "/" in model:
        # An inference-profile or foundation-model ARN: its last part is the model id
        # (an application profile's opaque id can be priced through the price file's aliases).
        model = model.rsplit("/", 1)[-1]
    if "embed" in model.lower() and op in ("invoke", "invoke-with-response-stream"):
        return "embedding", "bedrock", "invoke", model  # Titan and Cohere embeddings: no LLM call
    if op in ("converse", "converse-stream"):
        return "llm", "bedrock", "converse", model
    if op in ("invoke", "invoke-with-response-stream"):
        return "llm", "bedrock", "invoke", model
    if op in ("count-tokens", "count_tokens", "counttokens"):
        return "preflight", "bedrock", "count_tokens", model
    return None
