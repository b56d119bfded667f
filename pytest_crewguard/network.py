"""Refusing the network in replay mode, except for the hosts a test is allowed to reach.

vcrpy answers the HTTP clients it patches (httpx, requests, urllib3, aiohttp...). Anything
else that talks to the network (telemetry exporters, another client, a stray socket) must not
in replay. These ways out are closed, in every thread:

- connecting an IP socket, and sending a datagram to an address (``sendto``/``sendmsg``): seen
  through Python's audit events, which the C socket module raises itself, so a bare
  ``_socket.socket`` is refused like a ``socket.socket``;
- sending or receiving on an IP socket connected before the block began, to a peer that is
  neither loopback nor allowed: the methods of ``socket.socket`` and ``ssl.SSLSocket`` check
  their peer while a block lasts (wrapped at the first block, for the rest of the process).

Not seen: Unix sockets, DNS lookups, subprocesses, and C libraries that make their own system
calls (gRPC, uvloop, libpq); nor send/recv on a bare ``_socket.socket`` connected before.
"""

from __future__ import annotations

import _socket
import ipaddress
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from .errors import ConfigError

_lock = threading.Lock()
_blocks: list[frozenset[tuple[str, int | None]]] = []  # the allow-list of each active block
_allowed: frozenset[tuple[str, int | None]] = frozenset()  # their union
_refused: list[str] = []
_hook_installed = False
_wrapped_classes: set[type] = set()
_IP = (socket.AF_INET, socket.AF_INET6)
# The socket's family as the C socket stores it: `socket.socket.family` converts it to an enum
# on every read, and the data methods below run for every send and receive of the process
# while a block is active (asyncio's self-pipe included).
_raw_family = _socket.socket.family.__get__
# Kept for code that checks the block is undone: connect itself is never replaced.
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex

# Methods that move data on a connected socket. ``sendto``/``sendmsg`` with an address and
# ``connect`` are audit events; these are not, so they are wrapped while a block lasts.
_DATA_METHODS = (
    "send", "sendall", "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into",
    "sendfile", "read", "write",
)  # fmt: skip


class NetworkBlocked(ConnectionRefusedError):
    """A connection attempted while crewguard replays from cassettes."""


def parse_allowed(entries: Iterable[Any], source: str) -> tuple[str, ...]:
    """Check allow-list entries (``host`` or ``host:port``; ``[::1]:5432`` for IPv6).

    Returns them stripped; a bad one raises ``ConfigError`` naming ``source`` and the fix.
    """
    checked = []
    for entry in entries:
        text = entry.strip() if isinstance(entry, str) else None
        if not text:
            raise ConfigError(
                f"{source}: {entry!r} is not a host; expected host names or addresses, "
                "optionally with a port, e.g. localhost,db.internal:5432,[::1]:6379"
            )
        _split(text, source)
        checked.append(text)
    return tuple(checked)


def _split(entry: str, source: str = "allowed host") -> tuple[str, int | None]:
    host, port = entry, ""
    if entry.startswith("["):  # [v6] or [v6]:port
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ("" if not rest else "bad")
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    if not host:
        raise ConfigError(f"{source}: {entry!r} has no host; expected host or host:port")
    if port:
        if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ConfigError(f"{source}: {entry!r} has no valid port; expected host or host:port (1-65535)")
        return _normal(host), int(port)
    if entry.endswith(":"):
        raise ConfigError(f"{source}: {entry!r} has no valid port; expected host or host:port (1-65535)")
    return _normal(host), None


def _normal(host: str) -> str:
    host = host.split("%", 1)[0].lower()  # an IPv6 scope id does not change the peer
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


@lru_cache(maxsize=256)
def _addresses(host: str) -> frozenset[str]:
    """``host`` and the addresses it resolves to, so an allowed name covers its connections."""
    found = {host}
    try:
        for *_, address in socket.getaddrinfo(host, None):
            found.add(_normal(str(address[0])))
    except (OSError, UnicodeError):
        pass
    return frozenset(found)


def _expand(entries: Iterable[str]) -> frozenset[tuple[str, int | None]]:
    allowed: set[tuple[str, int | None]] = set()
    for entry in entries:
        host, port = _split(entry)
        allowed.update((address, port) for address in _addresses(host))
    return frozenset(allowed)


def _is_allowed(address: Any) -> bool:
    if not isinstance(address, tuple) or len(address) < 2:
        return False
    host, port = _normal(str(address[0])), address[1]
    return (host, None) in _allowed or (host, port) in _allowed


@lru_cache(maxsize=1024)
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _describe(address: Any) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _refuse(what: str, address: Any) -> None:
    target = _describe(address)
    with _lock:
        _refused.append(target)
    host = address[0] if isinstance(address, tuple) and address else target
    raise NetworkBlocked(
        f"crewguard replay mode refused {what} {target}: in replay every request must come from "
        "the cassette. Record with --crewguard-record-mode=once (or new_episodes) to reach the "
        f"network; if the test needs this host itself (a local database), allow it: "
        f"--crewguard-allow-hosts={host} or @pytest.mark.crewguard(allow_hosts=[{str(host)!r}])."
    )


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Called for every audit event in the process, for good (a hook cannot be removed):
    # return at once unless a block is active and the event is about a socket.
    if not _blocks or not event.startswith("socket."):
        return
    if event not in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        return
    sock, address = args[0], args[1]
    if getattr(sock, "family", None) not in _IP:
        return
    if address is None:  # sendmsg on a connected socket
        _check_peer(sock)
    elif not _is_allowed(address):
        _refuse("a connection to" if event == "socket.connect" else "a datagram to", address)


def _check_peer(sock: Any) -> None:
    """Refuse traffic on a connection to a peer that is neither loopback nor allowed."""
    try:
        peer = sock.getpeername()
    except OSError:  # not connected: datagrams to an address are audited, the rest is local
        return
    if _is_loopback(str(peer[0])) or _is_allowed(peer):
        return
    try:
        if _is_allowed(sock.getsockname()):  # our end of a connection to an allowed server
            return
    except OSError:
        pass
    _refuse("traffic on a connection opened before the test to", peer)


def _checked(original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        if _blocks and _raw_family(self) in _IP:
            _check_peer(self)
        return original(self, *args, **kwargs)

    method.__name__ = getattr(original, "__name__", "method")
    method.__doc__ = getattr(original, "__doc__", None)
    return method


def _wrap_methods() -> None:
    """Wrap the data methods of the socket classes loaded so far, once per process.

    They stay wrapped (outside a block the check is one comparison): replacing attributes of
    the socket classes at every test made CPython drop what it had specialised for sockets
    (asyncio's self-pipe included), half a millisecond per replayed test.
    """
    classes: list[type] = [socket.socket]
    ssl = sys.modules.get("ssl")  # no SSL socket can exist before ssl is imported
    if ssl is not None:
        classes.append(ssl.SSLSocket)
    for cls in classes:
        if cls in _wrapped_classes:
            continue
        _wrapped_classes.add(cls)
        for name in _DATA_METHODS:
            original = getattr(cls, name, None)
            if original is None or (cls is not socket.socket and name not in vars(cls)):
                continue  # an SSL socket inherits the wrapped socket.socket method
            setattr(cls, name, _checked(original))


@contextmanager
def network_blocked(allow_hosts: Iterable[str] = ()) -> Iterator[list[str]]:
    """Within the block, IP traffic raises :class:`NetworkBlocked` unless its host is allowed.

    ``allow_hosts`` entries are ``host`` (any port) or ``host:port``; names also cover the
    addresses they resolve to. Yields the list of what was refused.
    """
    global _allowed, _hook_installed
    allowed = _expand(allow_hosts)  # resolved before the block: lookups are not refused anyway
    with _lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True
        _wrap_methods()
        _blocks.append(allowed)
        _allowed = frozenset().union(*_blocks)
        start = len(_refused)
    refused: list[str] = []
    try:
        yield refused
    finally:
        with _lock:
            refused.extend(_refused[start:])
            _blocks.remove(allowed)
            _allowed = frozenset().union(*_blocks)
            if not _blocks:
                _refused.clear()
