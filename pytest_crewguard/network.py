"""Refusing every network connection in replay mode.

vcrpy answers the HTTP clients it patches (httpx, requests, urllib3, aiohttp...). Anything
else that opens a socket (telemetry exporters, another client, a stray ``socket.connect``)
would reach the network; in replay it must not, so ``connect`` itself is refused.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_depth = 0
_refused: list[str] = []
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex


class NetworkBlocked(ConnectionRefusedError):
    """A connection attempted while crewguard replays from cassettes."""


def _describe(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _guarded(original: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            target = _describe(address)
            with _lock:
                _refused.append(target)
            raise NetworkBlocked(
                f"crewguard replay mode refused a connection to {target}: in replay every "
                "request must come from the cassette. Record with --crewguard-record-mode=once "
                "(or new_episodes) to reach the network."
            )
        return original(self, address)

    return connect


@contextmanager
def network_blocked() -> Iterator[list[str]]:
    """Within the block, IP connections raise :class:`NetworkBlocked`; yields what was refused."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            socket.socket.connect = _guarded(_original_connect)  # type: ignore[method-assign]
            socket.socket.connect_ex = _guarded(_original_connect_ex)  # type: ignore[method-assign]
        start = len(_refused)
    refused: list[str] = []
    try:
        yield refused
    finally:
        with _lock:
            refused.extend(_refused[start:])
            _depth -= 1
            if _depth == 0:
                socket.socket.connect = _original_connect  # type: ignore[method-assign]
                socket.socket.connect_ex = _original_connect_ex  # type: ignore[method-assign]
                _refused.clear()
