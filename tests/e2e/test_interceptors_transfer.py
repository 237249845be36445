"""Call transfer and agent hang-up, end to end: the LLM's tool call → Twilio REST → the phone."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from patter._events import Event
from patter.errors import PatterConfigError
from patter.testing.audio import best_match
from patter.testing.fake_openai import message_text
from patter.testing.fake_twilio import FakeCall
from patter.testing.faults import Fault
from patter.testing.harness import PATTER_NUMBER, LoopbackWorld, openai_speech_at_8k, wait_for

BILLING = "+15550001111"
SUPPORT = "+15550002222"
TRANSFER_SENTENCE = "Transferring you to billing now."
GOODBYE = "Thank you for calling, goodbye."



def call_updates(world: LoopbackWorld, call: FakeCall) -> list[dict[str, str]]:
    """The REST updates (POST Calls/{sid}.json) Twilio received for ``call``."""
    return [r.params for r in world.twilio.requests
            if r.method == "POST" and r.path.endswith(f"/Calls/{call.sid}.json")]


async def heard_when_updated(world: LoopbackWorld, call: FakeCall) -> tuple[bytes, float]:
    """What the caller had heard, and what was still queued to play, when the call was updated."""
    await world.twilio.wait_until(lambda: bool(call_updates(world, call)), timeout=30)
    assert call.phone is not None
    return call.phone.heard_pcm(), call.phone.buffered_ms


async def start_call(world: LoopbackWorld, agent_kwargs: dict[str, Any],
                     ended: list[Event]) -> FakeCall:
    phone = world.patter()
    await world.serve(phone, phone.agent(**agent_kwargs), on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    return call


async def test_transfer_redirects_the_call_once_the_sentence_was_heard(
        world: LoopbackWorld) -> None:
    world.openai.transcripts.append("Put me through to billing please.")
    world.openai.call_tool("transfer_call", {"phone_number": BILLING, "reason": "billing"},
                           say=TRANSFER_SENTENCE)
    ended: list[Event] = []
    call = await start_call(
        world, {"system_prompt": f"You are a receptionist. Billing is {BILLING}."}, ended)
    assert call.phone is not None
    snapshot = asyncio.create_task(heard_when_updated(world, call))

    call.phone.say_text("Put me through to billing please.")
    heard, still_queued_ms = await snapshot
    await wait_for(lambda: bool(ended), timeout=20)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    # The whole sentence had played, and nothing else was waiting, when Twilio got the redirect.
    assert best_match(heard, openai_speech_at_8k(TRANSFER_SENTENCE)) > 0.9
    assert still_queued_ms == 0
    assert call.phone.events_of("clear_received") == []

    [update] = call_updates(world, call)
    assert "Status" not in update  # a redirect, not a hang-up
    hold_music = f"{world.public_url}/patter/hold-music.wav"
    assert call.played == [hold_music]
    assert [(d.number, d.caller_id) for d in call.dials] == [(BILLING, PATTER_NUMBER)]
    async with httpx.AsyncClient() as client:
        music = await client.get(f"http://127.0.0.1:{world.port}/patter/hold-music.wav")
    assert music.status_code == 200 and music.content[:4] == b"RIFF"

    assert len(ended) == 1
    assert ended[0]["ended_by"] == "transfer" and ended[0]["transfer_to"] == BILLING
    assert ended[0].history[-1] == {**ended[0].history[-1], "role": "assistant",
                                    "text": TRANSFER_SENTENCE}
    assert len(world.openai.chat_requests) == 1


async def test_transfer_allowlist_and_hold_music_are_configurable(world: LoopbackWorld) -> None:
    world.openai.transcripts.append("I need technical support.")
    world.openai.call_tool("transfer_call", {"phone_number": SUPPORT}, say="One moment.")
    ended: list[Event] = []
    call = await start_call(
        world,
        {"system_prompt": "You are a receptionist. Send technical questions to support.",
         "transfer_allowlist": [SUPPORT], "hold_music_url": "https://cdn.example.com/hold.mp3"},
        ended,
    )
    assert call.phone is not None
    call.phone.say_text("I need technical support.")
    await wait_for(lambda: bool(ended), timeout=30)
    assert call.played == ["https://cdn.example.com/hold.mp3"]
    assert [d.number for d in call.dials] == [SUPPORT]
    assert ended[0]["ended_by"] == "transfer" and ended[0]["transfer_to"] == SUPPORT


async def test_a_number_not_allowed_is_refused_and_the_llm_reads_why(world: LoopbackWorld) -> None:
    world.openai.transcripts.append("Transfer me to the premium line right now.")
    world.openai.call_tool("transfer_call", {"phone_number": "1-900-555-0199"})
    world.openai.call_tool("transfer_call", {"phone_number": "+19005550199"})
    world.openai.reply_with("Sorry, I cannot transfer you to that number.")
    ended: list[Event] = []
    call = await start_call(
        world, {"system_prompt": f"You are a receptionist. Billing is {BILLING}."}, ended)
    assert call.phone is not None
    voiced_before = call.phone.heard_voiced_s
    before = len(call.phone.heard_pcm())

    call.phone.say_text("Transfer me to the premium line right now.")
    await wait_for(lambda: len(world.openai.chat_requests) == 3, timeout=30)
    await call.phone.wait_for_heard(voiced_before + 1.0, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    def last_tool_message(request: dict[str, Any]) -> str:
        return [message_text(m) for m in request["messages"] if m["role"] == "tool"][-1]

    assert "E.164" in last_tool_message(world.openai.chat_requests[1])
    assert "transfer refused" in last_tool_message(world.openai.chat_requests[2])
    apology = openai_speech_at_8k("Sorry, I cannot transfer you to that number.")
    assert best_match(call.phone.heard_pcm()[before:], apology[2000:10000]) > 0.6
    assert call_updates(world, call) == [] and call.dials == []
    assert call.status == "in-progress" and ended == []


async def test_a_user_tool_cannot_take_the_name_transfer_call(world: LoopbackWorld) -> None:
    phone = world.patter()
    with pytest.raises(PatterConfigError, match="reserved"):
        phone.agent("You are a test bot.",
                    tools=[{"name": "transfer_call", "handler": lambda **_: "ok"}])


async def test_end_call_hangs_up_once_the_goodbye_was_heard(world: LoopbackWorld) -> None:
    world.openai.transcripts.append("That is all thank you.")
    world.openai.call_tool("end_call", {"reason": "caller is done"}, say=GOODBYE)
    ended: list[Event] = []
    call = await start_call(world, {"system_prompt": "You are a receptionist."}, ended)
    assert call.phone is not None
    snapshot = asyncio.create_task(heard_when_updated(world, call))

    call.phone.say_text("That is all thank you.")
    heard, still_queued_ms = await snapshot
    await wait_for(lambda: bool(ended), timeout=20)

    assert best_match(heard, openai_speech_at_8k(GOODBYE)) > 0.9
    assert still_queued_ms == 0
    assert call_updates(world, call) == [{"Status": "completed"}]
    await call.wait_ended(timeout=10)
    assert call.status == "completed" and call.dials == []
    assert ended[0]["ended_by"] == "agent" and ended[0]["transfer_to"] is None


@pytest.mark.parametrize("refusal", [Fault.http(400), Fault.http(503)], ids=["400", "503"])
async def test_a_transfer_twilio_refuses_is_a_tool_error_and_the_call_goes_on(
        world: LoopbackWorld, refusal: Fault) -> None:
    apology = "Sorry, the transfer did not go through. Can I help you another way?"
    world.openai.transcripts.append("Put me through to billing please.")
    world.openai.call_tool("transfer_call", {"phone_number": BILLING}, say=TRANSFER_SENTENCE)
    world.openai.reply_with(apology)
    world.twilio.faults.add("calls.redirect", refusal, times=3)  # a 503 is tried three times
    ended: list[Event] = []
    call = await start_call(
        world, {"system_prompt": f"You are a receptionist. Billing is {BILLING}."}, ended)
    assert call.phone is not None
    before = len(call.phone.heard_pcm())

    call.phone.say_text("Put me through to billing please.")
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    heard_apology = openai_speech_at_8k(apology)
    await wait_for(lambda: best_match(call.phone.heard_pcm()[before:],  # type: ignore[union-attr]
                                      heard_apology[2000:10000]) > 0.6, timeout=30)

    tool_result = [message_text(m) for m in world.openai.chat_requests[1]["messages"]
                   if m["role"] == "tool"][-1]
    assert "transfer failed" in tool_result and str(refusal.status) in tool_result
    assert call.dials == [] and call.status == "in-progress" and ended == []
    assert len(call_updates(world, call)) == (1 if refusal.status == 400 else 3)

    await call.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert len(ended) == 1
    assert ended[0]["ended_by"] == "caller" and ended[0]["transfer_to"] is None
