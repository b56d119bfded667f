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
        self.patchers = [_plain(p) or p for p in CassettePatcherBuilder(self.running).build()]
        self.running.target = None  # in use while a cassette is its target


class _SetAttribute:
    """One of vcrpy's ``mock.patch.object(target, name, new)``, applied as mock applies it but
    without mock's general machinery (spec, autospec, its own exit stack): entering forty of
    them took a tenth of a millisecond per test."""

    def __init__(self, target: Any, name: str, new: Any) -> None:
        self.target, self.name, self.new = target, name, new
        self._saved: list[tuple[bool, Any]] = []

    def __enter__(self) -> None:
        own = vars(self.target) if hasattr(self.target, "__dict__") else {}
        if self.name in own:
            self._saved.append((True, own[self.name]))
        elif hasattr(self.target, self.name):
            self._saved.append((False, None))  # inherited: deleting ours uncovers it again
        else:
            raise AttributeError(f"{self.target} does not have the attribute {self.name!r}")
        setattr(self.target, self.name, self.new)

    def __exit__(self, *exc_info: Any) -> None:
        local, original = self._saved.pop()
        if local:
            setattr(self.target, self.name, original)
        else:
            delattr(self.target, self.name)


_MOCK_OPTIONS = ("spec", "spec_set", "autospec", "new_callable")


def _plain(patcher: Any) -> _SetAttribute | None:
    """The patch as a :class:`_SetAttribute` when it is a plain ``patch.object`` with a value."""
    from unittest import mock

    patch_class = getattr(mock, "_patch", None)  # private: without it, mock applies them all
    plain = (
        patch_class is not None
        and isinstance(patcher, patch_class)
        and patcher.new is not mock.DEFAULT
        and not patcher.create
        and not patcher.kwargs
        and not patcher.additional_patchers
        and patcher.attribute_name is None
        and all(getattr(patcher, a) in (None, False) for a in _MOCK_OPTIONS)
    )
    return _SetAttribute(patcher.getter(), patcher.attribute, patcher.new) if plain else None


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
    entered: list[Any] = []
    try:
        for patcher in patchers:
            patcher.__enter__()
            entered.append(patcher)
        yield
    finally:
        failed: Exception | None = None
        while entered:  # undone in reverse, as an exit stack would: one failing undoes the rest
            try:
                entered.pop().__exit__(None, None, None)
            except Exception as err:  # pragma: no cover - vcrpy's own undo raising
                failed = failed or err
        if shared is not None:
            with _lock:
                shared.running.target = None
        if failed is not None:  # pragma: no cover
            raise failed
