"""SIGTERM to a serving process (this one, in-process): no new call is taken, and a call
still live when ``drain_timeout_s`` runs out is hung up, its ``on_call_end`` delivered."""

from __future__ import annotations

import asyncio
import os
import signal
from dataclasses import dataclass

import httpx

from patter._events import Event
from patter._twiml import BUSY_MESSAGE
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import LoopbackWorld, wait_for


@dataclass
class Serving:
    """A served instance with one live call, its ``on_call_end`` events in ``ended``."""

    live: FakeCall
    ended: list[Event]


async def not_ready(world: LoopbackWorld) -> None:
    """Wait until the served instance's /readyz fails (it has taken the signal)."""
    async with httpx.AsyncClient(trust_env=False) as http:
        async with asyncio.timeout(10):
            while (await http.get(f"http://127.0.0.1:{world.port}/readyz")).status_code == 200:
                await asyncio.sleep(0.05)


async def serve_one_live_call(world: LoopbackWorld, *, drain_timeout_s: float) -> Serving:
    """Serve with ``drain_timeout_s``; a call in, its caller hearing the agent."""
    phone = world.patter()
    ended: list[Event] = []
    await world.serve(phone, phone.agent("You are a test bot."), on_call_end=ended.append,
                      drain_timeout_s=drain_timeout_s)
    live = await world.call_in()
    assert live.phone is not None
    await live.phone.wait_for_heard(0.5, timeout=20)
    return Serving(live, ended)


async def test_sigterm_drains_then_hangs_up_what_is_left_at_the_deadline(
    world: LoopbackWorld,
) -> None:
    before = signal.getsignal(signal.SIGTERM)
    serving = await serve_one_live_call(world, drain_timeout_s=3.0)
    live, ended = serving.live, serving.ended

    os.kill(os.getpid(), signal.SIGTERM)
    await not_ready(world)
    refused = await world.call_in()
    await world.wait_served()

    assert refused.phone is None and refused.said == [BUSY_MESSAGE]
    assert [end["ended_by"] for end in ended] == ["shutdown"]
    assert ended[0]["call_sid"] == live.sid
    await live.wait_ended()
    await wait_for(lambda: live.status == "completed")
    assert signal.getsignal(signal.SIGTERM) is before


async def test_a_second_signal_hangs_up_at_once(world: LoopbackWorld) -> None:
    serving = await serve_one_live_call(world, drain_timeout_s=3600)

    os.kill(os.getpid(), signal.SIGTERM)
    await not_ready(world)
    os.kill(os.getpid(), signal.SIGINT)
    await world.wait_served()

    assert [end["ended_by"] for end in serving.ended] == ["shutdown"]
