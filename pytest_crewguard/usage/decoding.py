"""Response bodies as recorded: compression, server-sent events, NDJSON, JSON arrays and AWS
binary event streams, turned into a list of decoded JSON chunks.

Hand-written because genai-prices reads only complete JSON bodies; a stream must first be cut
into its chunks, which each provider's extractor then folds into the non-streamed shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

Headers = Mapping[str, Sequence[str] | str]


def header_value(headers: Headers, name: str) -> str:
    """First value of a header, case-insensitive; ``""`` when absent."""
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, str):
                return value
            return str(value[0]) if value else ""
    return ""


# No answer a model sends comes near this; a cassette is untrusted input, and a gzip body of
# 1.5 MB can unpack to gigabytes.
MAX_INFLATED = 64 * 1024 * 1024
GZIP_WBITS = 16 + zlib.MAX_WBITS


def inflate(body: bytes, wbits: int, limit: int = MAX_INFLATED) -> bytes:
    """``body`` decompressed (``wbits`` as for :func:`zlib.decompress`); ``zlib.error`` when it
    is not such data or would unpack to more than ``limit`` bytes."""
    inflater = zlib.decompressobj(wbits)
    data = inflater.decompress(body, limit)
    if inflater.unconsumed_tail:
        raise zlib.error(f"unpacks to more than {limit} bytes")
    if not inflater.eof:
        raise zlib.error("incomplete or truncated stream")
    return data


def decompress(body: bytes | str | None, encoding: str) -> bytes | str | None:
    """Undo gzip/deflate when the body is still compressed (cassettes differ on this)."""
    if not isinstance(body, bytes):
        return body
    try:
        if body[:2] == b"\x1f\x8b":
            return inflate(body, GZIP_WBITS)
        if encoding == "deflate":
            return inflate(body, zlib.MAX_WBITS)
    except zlib.error:
        pass
    return body


def as_text(raw: bytes | str | None) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def decode_body(content_type: str, raw: bytes | str | None) -> tuple[bool, Any, list[Any]]:
    """``(streamed, data, chunks)``: a whole JSON body in ``data``, or a stream's chunks."""
    if "vnd.amazon.eventstream" in content_type and isinstance(raw, bytes):
        return True, None, eventstream_payloads(raw)
    text = as_text(raw)
    if text is None:
        return "event-stream" in content_type, None, []
    head = text.lstrip()[:6]
    if "event-stream" in content_type or head.startswith(("data:", "event:")):
        chunks = sse_events(text)
        if not chunks and head.startswith(("{", "[")):  # an error body served as event-stream
            return True, parse_json(text), []
        return True, None, chunks
    data = parse_json(text)
    if isinstance(data, list):  # Gemini streamGenerateContent without alt=sse: a JSON array
        return True, None, data
    if data is None and "\n" in text.strip():  # NDJSON: Ollama's native streams
        lines = [parse_json(line) for line in text.splitlines() if line.strip()]
        if lines and all(isinstance(line, dict) for line in lines):
            return True, None, lines
    return "ndjson" in content_type, data, []


def sse_events(text: str) -> list[Any]:
    """The decoded JSON data of each server-sent event; ``[DONE]`` and junk dropped."""
    events: list[Any] = []
    data: list[str] = []

    def flush() -> None:
        if data:
            payload = parse_json("\n".join(data))
            if payload is not None:
                events.append(payload)
        data.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    flush()
    return events


def eventstream_payloads(data: bytes) -> list[Any]:
    """JSON payloads of an AWS binary event stream (Bedrock ``converse-stream``/``invoke-with-
    response-stream``). Frame: total length, headers length, prelude CRC, headers, payload, CRC.
    """
    payloads: list[Any] = []
    pos = 0
    while pos + 16 <= len(data):
        total, headers_len = struct.unpack_from(">II", data, pos)
        if total < 16 or pos + total > len(data) or 12 + headers_len > total - 4:
            break
        payload = parse_json(data[pos + 12 + headers_len : pos + total - 4].decode("utf-8", "replace"))
        if isinstance(payload, dict) and isinstance(payload.get("bytes"), str):
            try:  # invoke-with-response-stream wraps each model chunk in base64
                payload = parse_json(base64.b64decode(payload["bytes"]).decode("utf-8", "replace"))
            except (binascii.Error, ValueError):
                payload = None
        payloads.append(payload)
        pos += total
    return payloads


def dicts(chunks: list[Any]) -> list[dict[str, Any]]:
    """The chunks that are JSON objects."""
    return [chunk for chunk in chunks if isinstance(chunk, dict)]


def model_of(data: Any) -> str | None:
    """The model a JSON body names (``model``, or Gemini's ``modelVersion``)."""
    if isinstance(data, dict):
        for key in ("model", "modelVersion"):
            if isinstance(data.get(key), str) and data[key]:
                # Gemini's modelVersion may be a resource name: "models/gemini-2.5-flash-...".
                return str(data[key]).removeprefix("models/")
    return None


def fold_chunks(chunks: list[Any], usage_key: str) -> dict[str, Any]:
    """Fold OpenAI-style chat chunks or Gemini chunks: the first model name, and the last
    usage block (each chunk that has one carries the running total)."""
    folded: dict[str, Any] = {}
    for chunk in dicts(chunks):
        for key in ("model", "modelVersion"):
            if isinstance(chunk.get(key), str) and chunk[key]:
                folded.setdefault(key, chunk[key])
        if isinstance(chunk.get(usage_key), dict):
            folded[usage_key] = chunk[usage_key]
    return folded
