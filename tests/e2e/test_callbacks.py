"""User callbacks never hold a call: one that raises or hangs is logged and the call goes on."""

from __future__ import annotations

import asyncio
import logging

import pytest

from patter._events import Event
from patter.testing.audio import best_match
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for

REPLY = "Of course, we open at nine tomorrow."


async def test_a_stuck_on_message_and_a_failing_on_call_start_do_not_hold_the_call(
        world: LoopbackWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    world.openai.transcripts.append("When do you open tomorrow?")
    world.openai.reply_with(REPLY)
    stuck: list[str] = []
    ended: list[Event] = []

    def on_call_start(_event: Event) -> None:
        raise RuntimeError("the CRM is down")

    async def on_message(event: Event) -> None:
        stuck.append(event["text"])
        await asyncio.Event().wait()  # never returns

    phone = world.patter()
    await world.serve(phone, phone.agent("You are a receptionist.", first_message="Hi there."),
                      on_call_start=on_call_start, on_message=on_message,
                      on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    before = len(call.phone.heard_pcm())

    call.phone.say_text("When do you open tomorrow?")
    reply = openai_speech_at_8k(REPLY)
    await wait_for(lambda: best_match(call.phone.heard_pcm()[before:],  # type: ignore[union-attr]
                                      reply[2000:10000]) > 0.6, timeout=30)
    assert stuck  # the first on_message was called (and never returned)

    await call.hang_up()
    await wait_for(lambda: bool(ended), timeout=30)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert len(ended) == 1 and ended[0]["ended_by"] == "caller"
    assert [e["text"] for e in ended[0].history if e["role"] == "user"] == [
        "When do you open tomorrow?"]
    assert "callback raised; the call goes on" in caplog.messages
    assert "callback cut off: still running after the time limit; the call goes on" \
        in caplog.messages
