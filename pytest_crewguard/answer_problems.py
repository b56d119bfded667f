"""What is wrong with a recorded answer that the application could not use.

A request sent again, exactly as one the cassette already answered, is usually an SDK retrying
because that answer failed it: an error status, a body that is not JSON, a stream cut short.
Named here, the miss points at the answer to fix instead of at a diff with the next request.
"""

from __future__ import annotations

import json
from typing import Any

from .usage.decoding import as_text, decompress, header_value

_READ = ("", "identity", "gzip", "deflate")  # the encodings crewguard undoes


def answer_problem(response: dict[str, Any]) -> str | None:
    """Why an SDK would not take ``response`` (a cassette's recorded response), if it shows."""
    status = response.get("status") or {}
    code = status.get("code")
    if isinstance(code, int) and code >= 400:
        answer = f"HTTP {code} {status.get('message') or ''}".rstrip()
        return f"it is an error answer, {answer}, which SDKs retry"
    headers = response.get("headers") or {}
    content_type = header_value(headers, "content-type").lower()
    encoding = header_value(headers, "content-encoding").lower()
    if not ("json" in content_type or "text/event-stream" in content_type) or encoding not in _READ:
        return None  # binary streams (Bedrock's event stream), brotli, zstd: not judged here
    raw = (response.get("body") or {}).get("string")
    text = as_text(decompress(raw, encoding))
    if text is None:
        return "its body is not UTF-8 text"
    if "event-stream" in content_type:
        return _stream_problem(text)
    if "json" in content_type:
        if not text.strip():
            return "its body is empty where JSON was announced"
        return _json_problem(text, "its body")
    return None


def _stream_problem(text: str) -> str | None:
    lines = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    if not lines:
        return "its stream has no data lines"
    for number, data in enumerate(lines, 1):
        if data != "[DONE]":
            problem = _json_problem(data, f"its streamed chunk {number} of {len(lines)}")
            if problem:
                return problem
    return None


def _json_problem(text: str, what: str) -> str | None:
    try:
        json.loads(text)
    except json.JSONDecodeError as err:
        return f"{what} is not valid JSON ({err.msg} at character {err.pos} of {len(text)})"
    except RecursionError:
        return f"{what} is nested too deeply to read"
    return None
