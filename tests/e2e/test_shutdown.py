"""Stopping serve() (Ctrl-C, or cancelling its task) ends live calls gracefully."""

from __future__ import annotations

import asyncio

from patter._events import Event
from patter.testing.harness import LoopbackWorld, wait_for


async def test_cancelling_serve_hangs_up_live_calls_and_reports_each_end_once(
    world: LoopbackWorld,
) -> None:
    phone = world.patter()
    ended: list[Event] = []
    await world.serve(phone, phone.agent("You are a test bot."), on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.5, timeout=20)

    await world.stop_serving()

    await wait_for(lambda: bool(ended), timeout=15)
    await call.wait_ended()
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert len(ended) == 1
    assert ended[0]["ended_by"] == "shutdown"
    hang_ups = [
        r
        for r in world.twilio.requests
        if r.path.endswith(f"/Calls/{call.sid}.json") and r.params.get("Status") == "completed"
    ]
    assert len(hang_ups) == 1
    assert call.status == "completed"
