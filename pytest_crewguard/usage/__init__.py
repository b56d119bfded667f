"""What one recorded HTTP exchange was (an LLM call, a token-count preflight, an embedding,
anything else) and the token usage the provider reported for it.

:func:`classify_exchange` looks at the URL path (the host only where providers share paths),
decodes the response body (JSON, gzip, server-sent events, NDJSON, a Gemini JSON array, a
Bedrock binary event stream) and hands it to the provider's extractor, one module per
provider. It never raises: odd input gives ``kind="other"`` or ``usage=None``.

Token counts use one convention for every provider: ``input_tokens`` counts *all* input tokens
including cache reads and writes, ``output_tokens`` includes reasoning tokens.
"""

from __future__ import annotations

from .classify import classify_exchange
from .decoding import header_value
from .types import Exchange, Kind, Usage

__all__ = ["Exchange", "Kind", "Usage", "classify_exchange", "header_value"]
