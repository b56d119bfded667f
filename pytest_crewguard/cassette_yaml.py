"""The cassette's YAML text: readable in a review diff, byte-exact in what it stores.

A provider's request or response body is compact JSON on one line, often thousands of
characters: re-recording a crew then shows one changed line per call, and which prompt or answer
changed is lost in it. This serializer keeps every body *exactly* as sent or received and only
chooses where the YAML text breaks its lines: a JSON body is written as a double-quoted YAML
scalar broken after each member or item, after each ``\\n`` inside a JSON string (so a prompt
wraps at its own line breaks) and between sentences, using YAML's escaped line break (a ``\\``
at the end of a line), which adds nothing to the string.

Why not pretty-print the JSON: the bytes would change. The SDK sends compact JSON, so an
exact body matcher in plain vcrpy (``match_on=["body"]`` on a non-JSON content type) would no
longer find the recorded request, and a response body longer than its recorded
``Content-Length`` can be cut short by the HTTP client. Kept byte-exact, the file loads in plain
vcrpy and pytest-recording to the very same strings, and cassettes written before (one-line
bodies) load unchanged. Multi-line text (server-sent event streams) stays a literal block,
byte for byte.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import yaml

__all__ = ["ReadableYamlSerializer", "json_breaks"]


# Prose inside a string wraps at a word chosen by the word itself (content-defined, like rsync's
# chunks) once a line is _MIN_LINE characters long, and always by _MAX_LINE: a changed word then
# re-wraps its own line, and the lines after it break where they did before, instead of every
# later line of the paragraph shifting as fixed-width wrapping would make them.
_MIN_LINE = 70
_MAX_LINE = 150
_SCALAR_WIDTH = 190  # PyYAML's own width rule, kept only as a last resort for a JSON body


def _wrap_before(text: str, space: int, since: int) -> bool:
    if since >= _MAX_LINE:
        return True
    if since < _MIN_LINE:
        return False
    end = text.find(" ", space + 1)
    word = text[space + 1 : end if end != -1 else space + 24]
    return zlib.crc32(word.encode("utf-8", "replace")) % 4 == 0


def json_breaks(text: str) -> frozenset[int]:
    """Positions in compact JSON ``text`` where a new line may start without changing it.

    After each ``,`` between members or items and after each ``\\n`` escape inside a string;
    inside a string also before the space after a sentence's end, and between words of a long
    line (see ``_wrap_before``). Empty when ``text`` is not a JSON object or array.
    """
    if not text.lstrip().startswith(("{", "[")) or "\n" in text:
        return frozenset()
    try:
        json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than the parser goes: kept on one line
        return frozenset()
    breaks: list[int] = [0]
    in_string = False
    i = 0
    length = len(text)
    while i < length:
        ch = text[i]
        if in_string:
            if i - breaks[-1] >= _MAX_LINE and ch != " ":
                breaks.append(i)  # a run without spaces (base64 data): any character will do
            if ch == "\\":
                if text[i + 1 : i + 2] == "n":
                    breaks.append(i + 2)
                i += 2
                continue
            if ch == '"':
                in_string = False
            elif ch == " " and text[i - 1] != " " and text[i + 1 : i + 2] not in (" ", ""):
                if text[i - 1] in ".?!" or _wrap_before(text, i, i - breaks[-1]):
                    breaks.append(i)
        elif ch == '"':
            in_string = True
        elif ch == ",":
            breaks.append(i + 1)
        i += 1
    return frozenset(b for b in breaks if 0 < b < length - 1)


class _ReadableEmitter(yaml.emitter.Emitter):
    """Breaks a double-quoted JSON scalar at :func:`json_breaks`, as well as at the width."""

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        breaks = json_breaks(text) if split else frozenset()
        if not breaks:
            super().write_double_quoted(text, split)
            return
        # PyYAML's own loop, with one more reason to break: a position in ``breaks``.
        self.write_indicator('"', True)
        start = end = 0
        while end <= len(text):
            ch = text[end] if end < len(text) else None
            if end in breaks:
                self._put(text[start:end] + "\\")
                start = end
                self._new_line(ch == " ")
            if ch is None or ch in '"\\\x85\u2028\u2029\ufeff' or not (
                "\x20" <= ch <= "\x7e"
                or (self.allow_unicode and ("\xa0" <= ch <= "\ud7ff" or "\ue000" <= ch <= "\ufffd"))
            ):
                if start < end:
                    self._put(text[start:end])
                    start = end
                if ch is not None:
                    self._put(_escape(ch, self.ESCAPE_REPLACEMENTS))
                    start = end + 1
            wide = (ch == " " or start >= end) and self.column + (end - start) > _SCALAR_WIDTH
            if 0 < end < len(text) - 1 and wide:
                self._put(text[start:end] + "\\")
                start = max(start, end)
                self._new_line(text[start] == " ")
            end += 1
        self.write_indicator('"', False)

    def _new_line(self, space_next: bool) -> None:
        self.write_indent()
        self.whitespace = False
        self.indention = False
        if space_next:
            self._put("\\")  # a leading space would be folded away: escape it

    def _put(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data)


def _escape(ch: str, replacements: dict[str, str]) -> str:
    if ch in replacements:
        return "\\" + replacements[ch]
    if ch <= "\xff":
        return f"\\x{ord(ch):02X}"
    if ch <= "\uffff":
        return f"\\u{ord(ch):04X}"
    return f"\\U{ord(ch):08X}"


def _picked(kwargs: dict[str, Any], *names: str, **defaults: Any) -> dict[str, Any]:
    """``names`` (and ``defaults``' keys) from a dumper's keyword arguments, absent ones None."""
    return {name: kwargs.get(name, defaults.get(name)) for name in (*names, *defaults)}


class _ReadableDumper(
    _ReadableEmitter, yaml.serializer.Serializer, yaml.representer.SafeRepresenter, yaml.resolver.Resolver
):
    """Multi-line strings as literal blocks, JSON bodies broken at their structure."""

    def __init__(self, stream: Any, **kwargs: Any) -> None:
        # What yaml.Dumper.__init__ does, with this emitter: each base takes its own options.
        emitter = _picked(kwargs, "canonical", "indent", "width", "allow_unicode", "line_break")
        _ReadableEmitter.__init__(self, stream, **emitter)
        serializer = _picked(kwargs, "encoding", "explicit_start", "explicit_end", "version", "tags")
        yaml.serializer.Serializer.__init__(self, **serializer)
        representer = _picked(kwargs, "default_style", default_flow_style=False, sort_keys=True)
        yaml.representer.SafeRepresenter.__init__(self, **representer)
        yaml.resolver.Resolver.__init__(self)


def _represent_str(dumper: yaml.representer.SafeRepresenter, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    if len(data) > 80 and json_breaks(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_ReadableDumper.add_representer(str, _represent_str)


class ReadableYamlSerializer:
    """vcrpy serializer interface (``serialize``/``deserialize``): literal blocks for multi-line
    text, JSON bodies broken at their structure, every string kept byte for byte."""

    @staticmethod
    def serialize(cassette_dict: dict[str, Any]) -> str:
        return yaml.dump(
            cassette_dict, Dumper=_ReadableDumper, allow_unicode=True, sort_keys=False, width=100
        )

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return yaml.load(cassette_string, Loader=_UniqueKeyLoader)


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader where present (a large cassette reads about 40x faster), refusing
    a key given twice in one mapping: YAML keeps the last silently, so a merge's leftover
    (``interactions: []`` appended to a good file) would empty the cassette without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"found the key {key_node.value!r} twice", key_node.start_mark,
                    )  # fmt: skip
                seen.add(key_node.value)
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]
