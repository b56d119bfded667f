"""The garbage collector: paused while pytest collects, the heap frozen once a session has
crew tests, and left alone when turned off."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pytest_crewguard import gc_freeze
from pytest_crewguard.gc_freeze import (
    AFTER_COLLECTION,
    AFTER_FIRST_TEST,
    freeze_heap,
    paused_while_collecting,
)


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process as it starts: nothing frozen yet (an earlier in-process session may have)."""
    gc.unfreeze()
    monkeypatch.setattr(gc_freeze, "_done", set())
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the garbage collector frees it


def test_after_the_first_test_young_garbage_goes_before_the_freeze(unfrozen: None) -> None:
    kept = Node()
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    assert freeze_heap(AFTER_FIRST_TEST) is True
    assert gone() is None  # collected before the freeze, not kept alive by it
    frozen = gc.get_freeze_count()
    assert frozen > 1000 and gc.is_tracked(kept)
    assert freeze_heap(AFTER_FIRST_TEST) is False  # once per process
    assert gc.get_freeze_count() == frozen


def test_each_stage_freezes_once(unfrozen: None) -> None:
    assert freeze_heap(AFTER_COLLECTION) is True
    first = gc.get_freeze_count()
    made_since = [Node() for _ in range(100)]
    assert freeze_heap(AFTER_COLLECTION) is False
    assert freeze_heap(AFTER_FIRST_TEST) is True
    assert gc.get_freeze_count() >= first + len(made_since)


def test_a_disabled_collector_is_left_alone(unfrozen: None) -> None:
    gc.disable()
    try:
        assert freeze_heap(AFTER_COLLECTION) is False
        with paused_while_collecting():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0


def test_collection_is_paused_and_the_thresholds_come_back() -> None:
    before = gc.get_threshold()
    with paused_while_collecting():
        assert gc.get_threshold() == (0, *before[1:])
        with pytest.raises(RuntimeError):
            with paused_while_collecting():  # nested: already paused, nothing to undo
                raise RuntimeError
        assert gc.get_threshold()[0] == 0
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError):  # an error while collecting still restores them
        with paused_while_collecting():
            raise RuntimeError
    assert gc.get_threshold() == before


def test_thresholds_set_while_paused_are_kept() -> None:
    before = gc.get_threshold()
    try:
        with paused_while_collecting():
            gc.set_threshold(5000, 20, 20)  # a test module's own choice
        assert gc.get_threshold() == (5000, 20, 20)
    finally:
        gc.set_threshold(*before)


FREEZE_TESTS = """
import gc
import pytest

print(f"threshold while collecting: {gc.get_threshold()[0]}")

def test_a_plain_test_first():
    print(f"frozen before: {gc.get_freeze_count()}, threshold: {gc.get_threshold()[0]}")

@pytest.mark.crewguard(cassette="none.yaml")
def test_guarded():
    pass

def test_a_plain_test_after():
    print(f"frozen after: {gc.get_freeze_count()}")
"""


def _count(output: str, label: str) -> int:
    return int(output.split(f"{label}: ")[1].split(",")[0].split()[0])


@pytest.mark.usefixtures("crewai_loaded")
def test_a_session_with_crew_tests_freezes_twice_unless_turned_off(
    pytester: pytest.Pytester, unfrozen: None
) -> None:
    pytester.makepyfile(FREEZE_TESTS)
    threshold = gc.get_threshold()[0]
    off = pytester.runpytest("-p", "no:cacheprovider", "-s", "-o", "crewguard_gc_freeze=false")
    off.assert_outcomes(passed=3)
    assert _count(off.stdout.str(), "threshold while collecting") == threshold
    off.stdout.fnmatch_lines([f"*frozen before: 0, threshold: {threshold}*", "*frozen after: 0*"])
    on = pytester.runpytest("-p", "no:cacheprovider", "-s")
    on.assert_outcomes(passed=3)
    output = on.stdout.str()
    assert _count(output, "threshold while collecting") == 0
    assert _count(output, "threshold") == threshold  # restored once collected
    at_collection = _count(output, "frozen before")
    assert at_collection > 1000
    assert _count(output, "frozen after") > at_collection


def test_a_session_without_crew_tests_freezes_nothing(pytester: pytest.Pytester, unfrozen: None) -> None:
    pytester.makepyfile("import gc\n\ndef test_plain():\n    assert gc.get_freeze_count() == 0\n")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_bad_value_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrewguard_gc_freeze = maybe\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*crewguard: ini crewguard_gc_freeze: invalid truth value 'maybe'; expected true or false*"]
    )
