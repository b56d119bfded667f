"""Telling a crew's thread to stop: an exception raised in it, its socket read ended.

Python cannot kill a thread; these are the two ways to make one stop on its own.
"""

from __future__ import annotations

import ctypes
import socket
import sys
import threading
import time


class CrewTimeout(BaseException):
    """Raised inside a crew thread that outlived ``max_seconds`` (best effort)."""


# How long a stop waits for the thread to finish an import; one stuck longer is stopped anyway.
IMPORT_WAIT_S = 5.0


def interrupt(thread: threading.Thread) -> None:
    """Raise :class:`CrewTimeout` in ``thread`` at its next bytecode.

    That ends a crew stuck in Python code. One blocked in C (a socket read, a lock, a sleep)
    sees it only when the call returns. Not while the thread imports a module (a crew's first
    LLM call loads its SDK): raised there, it would leave the module half-loaded, or the import
    lock of that module held, hanging whatever imports it next; the exception then waits, in a
    thread of its own, until the import is done.
    """
    if thread.ident is None:
        return
    if not importing(thread):
        _raise_in(thread)
        return
    waiter = threading.Thread(target=_raise_after_import, args=(thread,), daemon=True)
    waiter.name = f"crewguard-stop[{thread.name}]"
    waiter.start()


def importing(thread: threading.Thread) -> bool:
    """Whether ``thread`` is inside Python's import machinery right now."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _raise_after_import(thread: threading.Thread) -> None:
    until = time.monotonic() + IMPORT_WAIT_S
    while thread.is_alive() and importing(thread) and time.monotonic() < until:
        time.sleep(0.005)
    if thread.is_alive():
        _raise_in(thread)


def _raise_in(thread: threading.Thread) -> None:
    if thread.ident is not None:
        ident, error = ctypes.c_ulong(thread.ident), ctypes.py_object(CrewTimeout)
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, error)


def unblock_read(thread: threading.Thread) -> None:
    """Shut down the socket ``thread`` is blocked reading from, so its read returns now.

    The asyncio worker that sends an agent's LLM call is not a daemon thread: left blocked, it
    would keep the interpreter from exiting until the provider answers (or the SDK's 10-minute
    timeout). With the read ended, the CrewTimeout set by :func:`interrupt` stops it before the
    SDK can retry.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        try:
            sock = owner if isinstance(owner, socket.socket) else getattr(owner, "_sock", None)
        except Exception:  # an object whose attributes cannot be read holds no socket of ours
            sock = None
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        frame = frame.f_back
