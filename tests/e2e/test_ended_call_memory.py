"""An ended call's objects are freed once it has ended, not seconds later or at Python's
next full collection (see docs/performance.md, "Memory over many calls")."""

from __future__ import annotations

import gc

from patter._events import Event
from patter._session import END_GRACE_S, CallSession
from patter.testing.harness import LoopbackWorld, wait_for


def _sessions_alive() -> bool:
    gc.collect()
    return any(isinstance(obj, CallSession) for obj in gc.get_objects())


async def test_an_ended_call_leaves_no_session_behind(world: LoopbackWorld) -> None:
    ended: list[Event] = []
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a test bot.", first_message="Hello there."),
                      on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.3, timeout=20)
    assert _sessions_alive()

    await call.hang_up()
    await wait_for(lambda: bool(ended), timeout=30)
    # Sooner than the grace a stuck chain is given before it is cancelled: that timer must
    # not keep the ended call's whole chain alive.
    await wait_for(lambda: not _sessions_alive(), timeout=END_GRACE_S / 2,
                   what="the ended call's session freed")
