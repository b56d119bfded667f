"""vcrpy's HTTP patches around one cassette, built once per process.

Entering a cassette, vcrpy builds about forty patchers (classes and methods of http.client,
urllib3, requests, httpx, aiohttp, ...), trying again to import each library that is not
installed: half a millisecond per test, for the same patchers every time. What they call to
really send (when recording) are the libraries' own functions as vcrpy saved them when it was
imported, not whatever is patched when a cassette opens; so one set, bound to a stand-in that
forwards to the running test's cassette, serves every test. Each test still enters and leaves
them around its own cassette, at the moment vcrpy would. A cassette opened inside another (an
in-process pytest run inside a test) gets patchers of its own, as vcrpy gives it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class _RunningCassette:
    """What vcrpy's patched classes hold as their cassette: the running test's, by delegation."""

    def __init__(self) -> None:
        self.target: Any = None

    def __getattr__(self, name: str) -> Any:
        target = self.__dict__["target"]
        if target is None:
            raise AttributeError(f"no cassette is in use (asked for {name!r})")
        return getattr(target, name)


class _SharedPatches:
    def __init__(self, cassette: Any) -> None:
        from vcr.patch import CassettePatcherBuilder

        self.running = _RunningCassette()
        self.running.target = cassette  # the builder reads the cassette's own patch options
        self.options = _options(cassette)
        self.patchers = list(CassettePatcherBuilder(self.running).build())
        self.running.target = None  # in use while a cassette is its target


_shared: _SharedPatches | None = None
_lock = threading.Lock()


def _options(cassette: Any) -> tuple[Any, ...]:
    return (tuple(getattr(cassette, "skip_patchers", ())), tuple(cassette.custom_patches))


def _take_shared(cassette: Any) -> _SharedPatches | None:
    """The shared patchers for ``cassette``, or ``None`` when they are in use (a cassette inside
    another, as in an in-process pytest run inside a test) or do not fit its patch options."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = _SharedPatches(cassette)
        if _shared.running.target is not None or _shared.options != _options(cassette):
            return None
        _shared.running.target = cassette
        return _shared


@contextlib.contextmanager
def http_patches(cassette: Any) -> Iterator[None]:
    """vcrpy's patches, answering from ``cassette`` until the block ends."""
    from vcr.patch import CassettePatcherBuilder

    shared = _take_shared(cassette)
    patchers = shared.patchers if shared is not None else CassettePatcherBuilder(cassette).build()
    try:
        with contextlib.ExitStack() as stack:
            for patcher in patchers:
                stack.enter_context(patcher)
            yield
    finally:
        if shared is not None:
            with _lock:
                shared.running.target = None
