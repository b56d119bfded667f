"""Bodies as text: decompressed (gzip, deflate) and decoded (UTF-8, else byte for byte).

Secrets are searched and scrubbed in this form, then the body is encoded back the same way, so
a scrubbed body keeps its Content-Encoding and still replays.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .usage.decoding import GZIP_WBITS, inflate


def _header(headers: Mapping[str, Any], wanted: str, lower: bool = True) -> str:
    if callable(getattr(headers, "lower_items", None)):  # vcrpy's case-insensitive headers
        value = headers.get(wanted)
    else:
        value = next((v for name, v in headers.items() if name.lower() == wanted), None)
    if value is None:
        return ""
    text = str(value[0] if isinstance(value, list) and value else value)
    return text.lower() if lower else text


def content_encoding(headers: Mapping[str, Any]) -> str:
    """The ``Content-Encoding`` header's value, lower-case (``""`` when there is none)."""
    return _header(headers, "content-encoding")


def content_type(headers: Mapping[str, Any], *, as_sent: bool = False) -> str:
    """The ``Content-Type`` header's value, lower-case unless ``as_sent`` (a multipart boundary
    is case-sensitive); ``""`` when there is none."""
    return _header(headers, "content-type", lower=not as_sent)


def _same(data: bytes) -> bytes:
    return data


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _deflater(wbits: int) -> Callable[[bytes], bytes]:
    def deflate(data: bytes) -> bytes:
        packer = zlib.compressobj(wbits=wbits)
        return packer.compress(data) + packer.flush()

    return deflate


def _decompressed(body: bytes, encoding: str) -> tuple[bytes, Callable[[bytes], bytes]]:
    if body[:2] == b"\x1f\x8b" or "gzip" in encoding:
        try:
            return inflate(body, GZIP_WBITS), _gzip
        except zlib.error:
            return body, _same
    # A zlib stream announces itself (0x78, header check) even without Content-Encoding.
    zlib_header = len(body) > 2 and body[0] == 0x78 and (body[0] * 256 + body[1]) % 31 == 0
    if "deflate" in encoding or zlib_header:
        for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib-wrapped, then raw deflate
            try:
                return inflate(body, wbits), _deflater(wbits)
            except zlib.error:
                continue
    return body, _same


def decoded(body: bytes, headers: Mapping[str, Any]) -> tuple[str, Callable[[str], bytes]]:
    """``body`` as text (decompressed; bytes read as Latin-1 when not UTF-8), and the way back."""
    raw, recompress = _decompressed(body, content_encoding(headers))
    try:
        text, codec = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:  # binary: every byte maps to one character, ASCII keys stay intact
        text, codec = raw.decode("latin-1"), "latin-1"
    return text, lambda new: recompress(new.encode(codec))


_READABLE_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


def _bodies(interactions: list[Any]) -> Iterator[tuple[str, bytes, Mapping[str, Any]]]:
    """Every non-empty body of serialized interactions: where it is (``the request body of
    interaction 2``), its bytes, and the headers beside it."""
    for number, interaction in enumerate(interactions, 1):
        if not isinstance(interaction, dict):
            continue
        for side in ("request", "response"):
            part = interaction.get(side)
            if not isinstance(part, dict):
                continue
            body = part.get("body")
            if isinstance(body, dict):
                body = body.get("string")
            if isinstance(body, str):
                body = body.encode("utf-8")
            if isinstance(body, bytes) and body:
                yield f"the {side} body of interaction {number}", body, part.get("headers") or {}


def unreadable_bodies(interactions: list[Any]) -> Iterator[tuple[str, str]]:
    """Bodies compressed in a way crewguard cannot read (``br``, ``zstd``), so cannot scrub:
    where each is, and its encoding."""
    for place, _, headers in _bodies(interactions):
        encoding = content_encoding(headers)
        if any(e.strip() not in _READABLE_ENCODINGS for e in encoding.split(",")):
            yield place, encoding


def interaction_bodies(interactions: list[Any]) -> Iterator[tuple[str, str]]:
    """Every body in decoded form, with where it is (``the request body of interaction 2``)."""
    for place, body, headers in _bodies(interactions):
        yield place, decoded(body, headers)[0]
