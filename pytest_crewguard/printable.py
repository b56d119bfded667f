"""Text from recordings made safe for a terminal or a Markdown page.

A model's answer, a tool's result or a provider's model name can hold escape sequences that
clear the screen, set the window title or paint a fake "PASSED" line; crewguard prints such
text in failure messages and the table, so its control characters are shown escaped (as
pytest shows them in test ids).
"""

from __future__ import annotations

# Every C0 control but tab and newline, DEL, and the C1 controls (U+0080..U+009F, which some
# terminals read as escapes too), as Python's escapes: str.translate does it in one C pass.
_ESCAPES = {
    code: ("\\r" if code == 13 else f"\\x{code:02x}")
    for code in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F, *range(0x80, 0xA0))
}
_ESCAPES_ONE_LINE = {**_ESCAPES, 0x0A: "\\n"}


def printable(text: str) -> str:
    """``text`` with its control characters escaped; newlines and tabs kept."""
    return text.translate(_ESCAPES)


def one_line(text: str) -> str:
    """``text`` with its control characters escaped, newlines too (a table cell)."""
    return text.translate(_ESCAPES_ONE_LINE)


def markdown_text(text: str, *, cell: bool = False) -> str:
    """``text`` for a Markdown list item, or a table ``cell`` (a pipe kept in it): on one line,
    its control characters escaped, and no HTML (GitHub renders raw HTML in a step summary)."""
    escaped = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("|", "\\|") if cell else escaped
