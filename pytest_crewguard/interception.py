"""Whether crewguard's cassette is still the one answering the test's HTTP traffic.

vcrpy answers a request with the cassette whose patch was installed last. Another cassette
opened after crewguard's (pytest-recording's ``@pytest.mark.vcr``, a ``vcr.use_cassette``
block, CrewAI's own test fixtures) would answer in its place, and crewguard would see no call
at all: 0 calls, $0, every gate passed. The transport methods vcrpy patches are compared with
what they were just after crewguard's cassette was installed.
"""

from __future__ import annotations

import sys
from typing import Any

# (module, class, method): what vcrpy patches for httpx, which every provider SDK uses.
_TARGETS: tuple[tuple[str, str, str], ...] = (
    ("httpx", "HTTPTransport", "handle_request"),
    ("httpx", "AsyncHTTPTransport", "handle_async_request"),
)

Snapshot = dict[str, Any]


def snapshot() -> Snapshot:
    """The patched transport methods as they are now (call just after entering the cassette)."""
    found: Snapshot = {}
    for module_name, class_name, method in _TARGETS:
        cls = getattr(sys.modules.get(module_name), class_name, None)
        if cls is not None:
            found[f"{module_name}.{class_name}.{method}"] = cls.__dict__.get(method)
    return found


def _cassette_of(function: Any) -> str | None:
    """The path of the vcrpy cassette a patched method answers from, if it is one."""
    for cell in getattr(function, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        path = getattr(value, "_path", None)
        if path is not None and hasattr(value, "play_response"):
            return str(path)
    return None


def taken_over(before: Snapshot) -> str | None:
    """Who answers the traffic now, when it is no longer crewguard's cassette; else ``None``."""
    now = snapshot()
    for name, original in before.items():
        current = now.get(name)
        if current is original:
            continue
        cassette = _cassette_of(current)
        if cassette is not None:
            return f"another vcrpy cassette ({cassette})"
        owner = getattr(current, "__module__", None) or "unknown code"
        return f"{owner} (it replaced {name})"
    return None
