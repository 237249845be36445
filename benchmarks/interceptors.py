"""Interceptor latencies: keypad → LLM, keypad barge-in → ``clear``, last word heard → transfer /
hang-up, and the delay the disclosure adds to caller speech given while it plays.

Run: ``.venv/bin/python -P benchmarks/interceptors.py [--calls 3]``

Every figure is taken from the SimulatedPhone's timeline (what the caller sent and heard)
and the moment the loopback fakes received a request; the fakes answer at once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from loguru import logger

from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import LoopbackWorld

logger.remove()

LONG_GREETING = ("Welcome to the city library. We are open from nine to five on weekdays, "
                 "and from ten to two on Saturdays.")
Scenario = Callable[[LoopbackWorld], Awaitable[float]]


async def answered_call(world: LoopbackWorld, **agent: object) -> FakeCall:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a phone menu.", **agent))  # type: ignore[arg-type]
    call = await world.call_in()
    assert call.phone is not None, call.stream_errors
    return call


async def when(wait: Awaitable[None]) -> float:
    """``time.monotonic()`` at the moment ``wait`` completes."""
    await wait
    return time.monotonic()


def updated(world: LoopbackWorld, call: FakeCall) -> bool:
    return any(r.method == "POST" and r.path.endswith(f"/Calls/{call.sid}.json")
               for r in world.twilio.requests)


async def key_to_llm(world: LoopbackWorld) -> float:
    call = await answered_call(world)
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    call.phone.press("1")
    asked = await when(world.openai.wait_until(lambda: bool(world.openai.chat_requests), 20))
    return (asked - call.phone.events_of("dtmf_sent")[0].t) * 1000


async def key_barge_in_to_clear(world: LoopbackWorld) -> float:
    call = await answered_call(world, first_message=LONG_GREETING)
    assert call.phone is not None
    await call.phone.wait_for_heard(5.0, timeout=30)
    call.phone.press("2")
    await call.phone.wait_for_received("clear", timeout=10)
    pressed = call.phone.events_of("dtmf_sent")[0].t
    return (call.phone.events_of("clear_received")[0].t - pressed) * 1000


async def heard_to_action(world: LoopbackWorld, tool: str, arguments: dict[str, str]) -> float:
    world.openai.transcripts.append("Please do it.")
    world.openai.call_tool(tool, arguments, say="Alright, one moment please.")
    call = await answered_call(world, transfer_allowlist=["+15550001111"])
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    call.phone.say_text("Please do it.")
    acted = await when(world.twilio.wait_until(lambda: updated(world, call), timeout=30))
    heard = max(e.t for e in call.phone.events_of("playout_stopped") if e.t <= acted)
    return (acted - heard) * 1000


async def heard_to_transfer(world: LoopbackWorld) -> float:
    return await heard_to_action(world, "transfer_call", {"phone_number": "+15550001111"})


async def heard_to_hang_up(world: LoopbackWorld) -> float:
    return await heard_to_action(world, "end_call", {})


async def disclosure_to_held_speech(world: LoopbackWorld) -> float:
    """Disclosure fully heard → the speech the caller gave during it reaches STT."""
    call = await answered_call(world)
    assert call.phone is not None
    await call.phone.wait_for_heard(0.2, timeout=20)
    call.phone.say_text("I need help with my bill.")
    uploaded = await when(world.openai.wait_until(lambda: bool(world.openai.transcribed_audio),
                                                  timeout=30))
    heard = min(e.t for e in call.phone.events_of("playout_stopped"))
    return (uploaded - heard) * 1000


SCENARIOS: list[tuple[str, Scenario]] = [
    ("keypress -> LLM request", key_to_llm),
    ("keypress while agent speaks -> clear", key_barge_in_to_clear),
    ("last word heard -> transfer redirect", heard_to_transfer),
    ("last word heard -> hang-up request", heard_to_hang_up),
    ("disclosure heard -> held speech at STT", disclosure_to_held_speech),
]


async def main(calls: int) -> None:
    print(f"interceptor latencies, {calls} calls each (ms; lower is better)")
    print(f"{'':42}{'median':>10}{'worst':>10}")
    for label, scenario in SCENARIOS:
        samples = []
        for _ in range(calls):
            async with LoopbackWorld() as world:
                samples.append(await scenario(world))
        print(f"{label:42}{statistics.median(samples):10.1f}{max(samples):10.1f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3)
    asyncio.run(main(parser.parse_args().calls))
