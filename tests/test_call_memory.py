"""CallMemory: an ended call's cyclic garbage is collected soon after it, not at Python's
next full collection (see docs/performance.md, "Memory over many calls")."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from patter._call_memory import COLLECT_AFTER_S, CallMemory


class _Cycle:
    """Stands for a call's chain: freed only by the cyclic collector."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_an_ended_calls_cycles_are_collected_after_it(no_automatic_gc: None) -> None:
    memory = CallMemory()
    garbage = _Cycle()
    freed = weakref.ref(garbage)
    del garbage
    memory.call_ended()
    memory.call_ended()  # a second call ending meanwhile shares the collection
    await asyncio.sleep(COLLECT_AFTER_S + 0.5)
    assert freed() is None


async def test_close_drops_a_pending_collection(no_automatic_gc: None) -> None:
    memory = CallMemory()
    garbage = _Cycle()
    kept = weakref.ref(garbage)
    del garbage
    memory.call_ended()
    memory.close()
    await asyncio.sleep(COLLECT_AFTER_S + 0.5)
    assert kept() is not None
    gc.collect()


def test_start_freezes_what_is_alive_and_close_gives_it_back() -> None:
    memory = CallMemory()
    memory.start()
    assert gc.get_freeze_count() > 0
    memory.close()
    assert gc.get_freeze_count() == 0
