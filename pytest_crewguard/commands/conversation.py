"""What was said in one recorded LLM call: the request's messages and the model's reply.

Reads the request and response bodies of OpenAI (chat, responses), Anthropic (messages), Gemini
(generateContent), Bedrock (converse) and Ollama calls, whole or streamed. Never raises: a shape it does
not know gives no messages, not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..usage.decoding import as_text, decode_body, decompress, header_value, parse_json


@dataclass
class Message:
    """One message: ``role`` (system, user, assistant, tool), its text, its tool calls."""

    role: str
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"role": self.role, "text": self.text, "tool_calls": self.tool_calls}


def _text_of(content: Any) -> str:
    """Text of a content value: a string, or a list of blocks/parts with text in them."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for block in content:
        if isinstance(block, str):
            texts.append(block)
        elif isinstance(block, dict):
            text = block.get("text")
            if isinstance(text, dict):  # Bedrock system blocks
                text = text.get("text")
            if isinstance(text, str):
                texts.append(text)
            elif isinstance(block.get("content"), str | list) and block.get("type") == "tool_result":
                texts.append(_text_of(block["content"]))
            elif isinstance(block.get("toolResult"), dict):
                texts.append(_text_of(block["toolResult"].get("content")))
            elif isinstance(block.get("functionResponse"), dict):
                texts.append(json.dumps(block["functionResponse"].get("response"), ensure_ascii=False))
            elif block.get("type") in ("image", "image_url", "input_image", "document", "input_file"):
                texts.append(f"[{block['type']}]")
            elif "inlineData" in block or "fileData" in block:
                texts.append("[file]")
    return "\n".join(t for t in texts if t)


def _call(name: Any, arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        arguments = parse_json(arguments) if arguments.strip() else {}
    return {"name": str(name), "arguments": arguments}


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for call in message.get("tool_calls") or []:  # OpenAI chat
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            calls.append(_call(function.get("name"), function.get("arguments")))
    content = message.get("content") or message.get("parts")
    for block in content if isinstance(content, list) else []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "tool_use":  # Anthropic
            calls.append(_call(block.get("name"), block.get("input")))
        elif isinstance(block.get("toolUse"), dict):  # Bedrock converse
            calls.append(_call(block["toolUse"].get("name"), block["toolUse"].get("input")))
        elif isinstance(block.get("functionCall"), dict):  # Gemini
            calls.append(_call(block["functionCall"].get("name"), block["functionCall"].get("args")))
    return calls


def _message(role: Any, item: dict[str, Any]) -> Message:
    role = {"model": "assistant", "function": "tool", "developer": "system"}.get(str(role), str(role))
    content = item.get("content", item.get("parts"))
    if role == "user" and isinstance(content, list) and all(
        isinstance(b, dict)
        and (b.get("type") == "tool_result" or "toolResult" in b or "functionResponse" in b)
        for b in content
    ) and content:
        role = "tool"
    return Message(role, _text_of(content), _tool_calls(item))


def request_messages(body: Any) -> list[Message]:
    """The messages a request body sends, system prompt first."""
    if not isinstance(body, dict):
        return []
    messages: list[Message] = []
    system = body.get("system") or body.get("instructions") or body.get("systemInstruction")
    if system:
        parts = system.get("parts") if isinstance(system, dict) else system
        messages.append(Message("system", _text_of(parts)))
    items = body.get("messages") or body.get("contents") or body.get("input") or body.get("prompt") or []
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":  # Responses API items
            messages.append(Message("assistant", "", [_call(item.get("name"), item.get("arguments"))]))
        elif kind == "function_call_output":
            messages.append(Message("tool", str(item.get("output", ""))))
        else:
            messages.append(_message(item.get("role", "user"), item))
    return messages


def _stream_reply(chunks: list[Any]) -> Message:
    """The assistant message a stream's chunks spell out, pieced together."""
    text: list[str] = []
    tools: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for choice in chunk.get("choices") or []:  # OpenAI chat
            delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
            text.append(delta.get("content") or "")
            for call in delta.get("tool_calls") or []:
                slot = tools.setdefault(call.get("index", len(tools)), {"name": "", "arguments": ""})
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
        if chunk.get("type") == "response.completed" and isinstance(chunk.get("response"), dict):
            return response_reply(chunk["response"]) or Message("assistant")
        if chunk.get("type") == "content_block_start":  # Anthropic
            block = chunk.get("content_block") or {}
            if block.get("type") == "tool_use":
                tools[chunk.get("index", len(tools))] = {"name": block.get("name", ""), "arguments": ""}
        delta = chunk.get("delta") or (chunk.get("contentBlockDelta") or {}).get("delta") or {}
        if isinstance(delta, dict):
            text.append(delta.get("text") or "")
            if isinstance(delta.get("partial_json"), str):
                tools.setdefault(chunk.get("index", 0), {"name": "", "arguments": ""})
                tools[chunk.get("index", 0)]["arguments"] += delta["partial_json"]
        if isinstance(chunk.get("response"), str):  # Ollama generate
            text.append(chunk["response"])
        if isinstance(chunk.get("message"), dict) and "role" in chunk["message"]:  # Ollama chat
            text.append(_text_of(chunk["message"].get("content")))
        for candidate in chunk.get("candidates") or []:  # Gemini
            reply = _message("assistant", (candidate or {}).get("content") or {})
            text.append(reply.text)
            tools.update({len(tools) + i: c for i, c in enumerate(reply.tool_calls)})
    calls = [_call(t["name"], t["arguments"]) for _, t in sorted(tools.items())]
    return Message("assistant", "".join(text), calls)


def response_reply(data: Any) -> Message | None:
    """The assistant message of a whole (not streamed) response body."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("choices"), list) and data["choices"]:  # OpenAI chat
        choice = data["choices"][0] or {}
        message = choice.get("message") or {}
        text = _text_of(message.get("content") or choice.get("text"))
        return Message("assistant", text, _tool_calls(message))
    if isinstance(data.get("output"), list):  # OpenAI responses
        texts, calls = [], []
        for item in data["output"]:
            if isinstance(item, dict) and item.get("type") == "function_call":
                calls.append(_call(item.get("name"), item.get("arguments")))
            elif isinstance(item, dict):
                texts.append(_text_of(item.get("content")))
        return Message("assistant", "\n".join(t for t in texts if t), calls)
    if isinstance(data.get("output"), dict):  # Bedrock converse
        return _message("assistant", data["output"].get("message") or {})
    if data.get("type") == "message" or isinstance(data.get("content"), list):  # Anthropic
        return _message("assistant", data)
    if isinstance(data.get("candidates"), list) and data["candidates"]:  # Gemini
        return _message("assistant", (data["candidates"][0] or {}).get("content") or {})
    if isinstance(data.get("message"), dict):  # Ollama chat
        return _message("assistant", data["message"])
    if isinstance(data.get("response"), str):  # Ollama generate
        return Message("assistant", data["response"])
    if isinstance(data.get("error"), dict | str):
        error = data["error"]
        return Message("error", str(error.get("message", error) if isinstance(error, dict) else error))
    return None


def request_json(request: dict[str, Any]) -> Any:
    """The request body parsed as JSON (``None`` when it is not JSON)."""
    encoding = header_value(request.get("headers") or {}, "content-encoding")
    text = as_text(decompress(request.get("body"), encoding))
    return parse_json(text) if text else None


def reply_of(response: dict[str, Any]) -> Message | None:
    """The model's reply in a recorded response, whole or streamed."""
    headers = response.get("headers") or {}
    body = (response.get("body") or {}).get("string")
    raw = decompress(body, header_value(headers, "content-encoding").lower())
    try:
        streamed, data, chunks = decode_body(header_value(headers, "content-type").lower(), raw)
    except Exception:  # untrusted input: an odd body shows no reply
        return None
    if streamed and data is None:
        return _stream_reply(chunks)
    return response_reply(data)
