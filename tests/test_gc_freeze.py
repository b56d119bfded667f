"""The imported heap is frozen once, after a session's first crew test, and only then."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pytest_crewguard import gc_freeze


@pytest.fixture
def unfrozen(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process as it starts: nothing frozen yet (an earlier in-process session may have)."""
    gc.unfreeze()
    monkeypatch.setattr(gc_freeze, "_frozen", False)
    yield
    gc.unfreeze()


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the garbage collector frees it


def test_freezes_the_heap_once_and_collects_young_garbage_first(unfrozen: None) -> None:
    kept = Node()
    dropped = Node()
    gone = weakref.ref(dropped)
    del dropped
    assert gc_freeze.freeze_imported_heap() is True
    assert gone() is None  # collected before the freeze, not kept alive by it
    frozen = gc.get_freeze_count()
    assert frozen > 1000 and gc.is_tracked(kept)
    assert gc_freeze.freeze_imported_heap() is False  # once per process
    assert gc.get_freeze_count() == frozen


def test_leaves_a_disabled_collector_alone(unfrozen: None) -> None:
    gc.disable()
    try:
        assert gc_freeze.freeze_imported_heap() is False
    finally:
        gc.enable()
    assert gc.get_freeze_count() == 0


FREEZE_TESTS = """
import gc
import pytest

def test_a_plain_test_first():
    print(f"frozen before: {gc.get_freeze_count()}")

@pytest.mark.crewguard(cassette="none.yaml")
def test_guarded():
    pass

def test_a_plain_test_after():
    print(f"frozen after: {gc.get_freeze_count()}")
"""


@pytest.mark.usefixtures("crewai_loaded")
def test_the_first_guarded_test_freezes_the_heap_unless_turned_off(
    pytester: pytest.Pytester, unfrozen: None
) -> None:
    pytester.makepyfile(FREEZE_TESTS)
    off = pytester.runpytest("-p", "no:cacheprovider", "-s", "-o", "crewguard_gc_freeze=false")
    off.assert_outcomes(passed=3)
    off.stdout.fnmatch_lines(["*frozen before: 0*", "*frozen after: 0*"])
    on = pytester.runpytest("-p", "no:cacheprovider", "-s")
    on.assert_outcomes(passed=3)
    on.stdout.fnmatch_lines(["*frozen before: 0*"])
    after = int(on.stdout.str().split("frozen after: ")[1].split()[0])
    assert after > 1000


def test_a_bad_value_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncrewguard_gc_freeze = maybe\n")
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*crewguard: ini crewguard_gc_freeze: invalid truth value 'maybe'; expected true or false*"]
    )
