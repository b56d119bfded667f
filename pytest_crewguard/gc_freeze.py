"""The imported heap, frozen once a session's first crew test is done.

Importing CrewAI and its provider SDKs, and a first kickoff (the SDK's lazy modules, the price
table), leaves some 300,000 long-lived objects. CPython's full garbage collection walks all
of them each time (about 150 ms on a 2-core CI machine): a few times per few hundred tests, and
five times in a row when pytest ends (it collects until no unraisable exception is left).
``gc.freeze()`` moves the objects alive at that moment into a generation the collector
skips; everything a later test creates is collected as before. What is frozen is never
collected as a cycle: the first test's young garbage is collected first, and the freeze
happens once per process, so what it keeps is bounded. Turned off by the ini key
``crewguard_gc_freeze = false``, and left alone when the garbage collector is disabled.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_imported_heap"]

_frozen = False


def freeze_imported_heap() -> bool:
    """Freeze the heap the first time this is called in a process; True when it froze."""
    global _frozen
    if _frozen or not gc.isenabled():
        return False
    _frozen = True
    gc.collect(1)  # the first test's young garbage goes now rather than living on, frozen
    gc.freeze()
    return True
