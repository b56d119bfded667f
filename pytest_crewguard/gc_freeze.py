"""The garbage collector in a crew test session: paused while pytest collects, and the
imported heap frozen.

Importing CrewAI and its provider SDKs leaves some 270,000 long-lived objects, and a first
kickoff (the SDK's lazy modules, the price table) more. CPython's full collection walks all of
them each time (about 0.2 s on a 2-core CI machine): four times while ``import crewai`` runs,
where they find a few dozen objects to free, then a few times per few hundred tests, and five
times in a row when pytest ends (it collects until no unraisable exception is left).

So automatic collection is paused while pytest collects (the test modules import CrewAI), and
when the session has crew tests, the heap is frozen (``gc.freeze()``) twice: at the end of
collection, and once the first crew test is done. Frozen objects go to a generation the
collector skips; everything later tests create is collected as before. What is frozen is
never collected as a cycle: at the end of collection that is about 5,000 objects of import-time
garbage (finding them would take a full collection, the very cost avoided), after the first
test its young garbage is collected first; each freeze happens once per process, so what they
keep is bounded. Frozen objects are not listed by ``gc.get_objects()`` or
``gc.get_referrers()`` either (heap-walking leak checks see only later objects). The ini key
``crewguard_gc_freeze = false`` leaves the collector alone, and a disabled collector
(``gc.disable()``) is left as it is.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["AFTER_COLLECTION", "AFTER_FIRST_TEST", "freeze_heap", "paused_while_collecting"]

AFTER_COLLECTION = "after collection"
AFTER_FIRST_TEST = "after the first crew test"
_done: set[str] = set()


@contextmanager
def paused_while_collecting() -> Iterator[None]:
    """Automatic collection off for the block, then back to the thresholds it had."""
    thresholds = gc.get_threshold()
    if not gc.isenabled() or thresholds[0] == 0:
        yield
        return
    gc.set_threshold(0, *thresholds[1:])
    try:
        yield
    finally:
        if gc.get_threshold()[0] == 0:  # unless a test module set thresholds of its own meanwhile
            gc.set_threshold(*thresholds)


def freeze_heap(stage: str) -> bool:
    """Freeze the heap at ``stage`` (once per process for each stage); True when it froze."""
    if stage in _done or not gc.isenabled():
        return False
    _done.add(stage)
    if stage == AFTER_FIRST_TEST:
        gc.collect(1)  # the first test's young garbage goes now rather than living on, frozen
    gc.freeze()
    return True
