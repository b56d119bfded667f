"""One shared default TLS context for the HTTP clients a replayed crew builds.

Every ``httpx`` transport builds its own ``ssl.SSLContext`` and, with the default
``verify=True``, parses the whole CA bundle into it (``load_verify_locations``: some 20 ms
with OpenSSL 3). Each CrewAI ``LLM(...)`` builds a sync and an async SDK client, so a one-call
crew pays that twice per kickoff, which is most of the local time of a replayed kickoff.

In replay nothing ever opens a socket: vcrpy answers every request before the transport is
reached, and ``network_blocked()`` refuses any connection that would get past it. The contexts
are built and never used. While :func:`shared_tls_context` is active, transports that ask for
the default context get one built once (per trust settings) instead.

Why this is safe:

- Only the default case is shared: ``verify=True`` without a client certificate. ``verify=False``,
  a CA path or a caller's own ``SSLContext`` go to the library's function untouched.
- The shared context is built by the library's own function with the same arguments, so it
  trusts exactly what a fresh one would (``SSL_CERT_FILE``/``SSL_CERT_DIR`` are part of the
  cache key, as the library reads them when ``trust_env`` is true). A client built during
  replay and used later would verify servers just as it would have with its own context.
- ``ssl.SSLContext`` is designed to be shared by many connections (Python's ssl docs), and is
  thread-safe as long as it is not reconfigured; the library never reconfigures a context it
  receives.
- Only the name the transports call (``<lib>._transports.default.create_ssl_context``) is
  swapped, and only while the block is active; record mode never enters it, so recording builds
  every client exactly as the application would in production.

``httpx`` (OpenAI's SDK) and ``httpx2`` (Anthropic's SDK) are both handled. A library not yet
imported when the block starts is left alone rather than imported for nothing; the next block
patches it.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["shared_tls_context"]

# Modules whose HTTP transports build their SSL context through a module-level name.
TRANSPORT_MODULES: tuple[str, ...] = ("httpx._transports.default", "httpx2._transports.default")

CreateContext = Callable[..., ssl.SSLContext]

_lock = threading.Lock()
_cache_lock = threading.Lock()
_depth = 0
# module name -> (the library's function, the sharing one installed in its place)
_patched: dict[str, tuple[CreateContext, CreateContext]] = {}
# Kept across blocks: every replayed test after the first builds no context at all.
_contexts: dict[tuple[str, bool, str | None, str | None], ssl.SSLContext] = {}


def _sharing(module_name: str, original: CreateContext) -> CreateContext:
    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is not True or cert:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        env = (os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")) if trust_env else (None, None)
        key = (module_name, bool(trust_env), *env)
        with _cache_lock:
            context = _contexts.get(key)
            if context is None:
                context = original(verify=True, cert=None, trust_env=trust_env)
                _contexts[key] = context
        return context

    create_ssl_context.__wrapped__ = original  # type: ignore[attr-defined]
    return create_ssl_context


def _patch() -> None:
    for name in TRANSPORT_MODULES:
        module = sys.modules.get(name)
        original = getattr(module, "create_ssl_context", None)
        if module is None or original is None or name in _patched:
            continue
        sharing = _sharing(name, original)
        _patched[name] = (original, sharing)
        module.create_ssl_context = sharing  # type: ignore[attr-defined]


def _unpatch() -> None:
    for name, (original, sharing) in _patched.items():
        module = sys.modules.get(name)
        # Leave alone a function someone else put there since: theirs to restore.
        if module is not None and getattr(module, "create_ssl_context", None) is sharing:
            module.create_ssl_context = original  # type: ignore[attr-defined]
    _patched.clear()


@contextmanager
def shared_tls_context() -> Iterator[None]:
    """Within the block, HTTP clients share one default SSL context (replay mode only).

    Re-entrant and process-wide, like the network block it accompanies.
    """
    global _depth
    with _lock:
        _depth += 1
        # A library imported since the outer block began is patched by the next entry too.
        _patch()
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _unpatch()
