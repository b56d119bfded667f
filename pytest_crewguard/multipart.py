"""Credential fields of multipart bodies (an upload with ``api_key`` or ``client_secret`` in a
form field).

Written here rather than with the email parser: that parser rebuilds the whole body, changing
bytes the request was sent and matched with; here only a credential field's value changes.
Split on the boundary the Content-Type names (linear in the body); each part's headers are
read with the email package's header parser (quoted, unquoted and RFC 2231 names, folded lines).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value

from .secret_values import PLACEHOLDER, remember

_BLANK_LINE = re.compile(r"\r?\n\r?\n")
_HEADERS_READ = 8192  # a part's headers are a few lines; the email parser is slow on huge ones
_LINE_END = re.compile(r"\r?\n\Z")


def boundary_of(content_type: str) -> str | None:
    """The boundary of a ``multipart/*`` Content-Type (quoted or not), ``None`` without one."""
    message = Message()
    message["content-type"] = content_type
    boundary = message.get_boundary()
    return boundary or None


def scrub_fields(text: str, boundary: str, is_secret: Callable[[str], bool]) -> str:
    """``text`` with the value of every part whose name ``is_secret`` replaced; ``text``
    itself when there is none."""
    delimiter = "--" + boundary
    pieces = text.split(delimiter)
    changed = False
    for number in range(1, len(pieces)):
        piece = pieces[number]
        if piece.startswith("--"):  # the closing delimiter: the epilogue follows
            break
        scrubbed = _scrub_part(piece, is_secret)
        if scrubbed is not piece:
            pieces[number], changed = scrubbed, True
    return delimiter.join(pieces) if changed else text


def _scrub_part(piece: str, is_secret: Callable[[str], bool]) -> str:
    # A part: the rest of the delimiter line, its headers, a blank line, the value, a line end.
    start = piece.find("\n") + 1
    if start == 0:
        return piece
    if piece.startswith(("\r\n", "\n"), start):  # no headers at all: no name
        return piece
    blank = _BLANK_LINE.search(piece, start)
    if blank is None:
        return piece
    name = _field_name(piece[start : blank.start()])
    if name is None or not is_secret(name):
        return piece
    value = piece[blank.end() :]
    end = _LINE_END.search(value)
    core = value[: end.start()] if end else value
    if not core or core == PLACEHOLDER:
        return piece
    remember(core)
    return piece[: blank.end()] + PLACEHOLDER + value[len(core) :]


def _field_name(headers: str) -> str | None:
    name = HeaderParser().parsestr(headers[:_HEADERS_READ]).get_param("name", header="content-disposition")
    if name is None:
        return None
    return str(collapse_rfc2231_value(name))
