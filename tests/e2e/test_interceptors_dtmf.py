"""Keypad presses end to end: Twilio `dtmf` → "[DTMF: N]" for the LLM → a spoken answer."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from patter._events import Event
from patter.testing.audio import best_match
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for

LONG_GREETING = ("Welcome to the city library. We are open from nine to five on weekdays, "
                 "and from ten to two on Saturdays. Press one for renewals, or two for events.")



def user_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def test_a_keypress_reaches_the_llm_as_text_and_gets_a_spoken_answer(
        world: LoopbackWorld) -> None:
    world.openai.reply_with("You pressed one: renewals.")
    phone = world.patter()
    transcripts: list[Event] = []
    await world.serve(phone, phone.agent("You are a phone menu. 1 is renewals."),
                      on_transcript=transcripts.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    voiced_before, before = call.phone.heard_voiced_s, len(call.phone.heard_pcm())

    call.phone.press("1")
    await wait_for(lambda: bool(world.openai.chat_requests), timeout=20)
    await call.phone.wait_for_heard(voiced_before + 1.0, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    assert user_messages(world.openai.chat_requests[0]) == ["[DTMF: 1]"]
    answer = openai_speech_at_8k("You pressed one: renewals.")
    assert best_match(call.phone.heard_pcm()[before:], answer[2000:10000]) > 0.8
    assert [(t["role"], t["text"]) for t in transcripts] == [("user", "[DTMF: 1]")]
    assert transcripts[0]["history"][-1]["text"] == "[DTMF: 1]"
    assert transcripts[0]["history"][-1]["role"] == "user"


async def test_star_and_pound_count_and_invalid_digits_are_ignored_with_a_log_line(
        world: LoopbackWorld, caplog: pytest.LogCaptureFixture) -> None:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a phone menu."))
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    with caplog.at_level(logging.INFO, logger="patter"):
        call.phone.press("*")
        await wait_for(lambda: len(world.openai.chat_requests) == 1, timeout=20)
        await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
        for invalid in ("A", "x", "12"):
            call.phone.press(invalid)
        call.phone.press("#")
        await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=20)

    sent = [m for r in world.openai.chat_requests for m in user_messages(r)]
    assert sent == ["[DTMF: *]", "[DTMF: *]", "[DTMF: #]"]  # the second request repeats history
    assert user_messages(world.openai.chat_requests[1])[-1] == "[DTMF: #]"
    ignored = [r for r in caplog.records
               if getattr(r, "reason", "") == "dtmf digit is not a keypad key"]
    assert len(ignored) == 3


async def test_a_keypress_while_the_agent_speaks_is_barge_in(world: LoopbackWorld) -> None:
    world.openai.reply_with("Renewals. What is your card number?")
    phone = world.patter()
    agent = phone.agent("You are a library phone menu.", first_message=LONG_GREETING)
    await world.serve(phone, agent)
    call = await world.call_in()
    assert call.phone is not None
    disclosure_s = len(await phone.disclosure_audio(agent)) / 16000
    await call.phone.wait_for_heard(disclosure_s + 1.5, timeout=30)

    call.phone.press("1")
    await call.phone.wait_for_received("clear", timeout=10)
    voiced_at_clear = call.phone.heard_voiced_s
    await wait_for(lambda: bool(world.openai.chat_requests), timeout=20)
    await call.phone.wait_for_heard(voiced_at_clear + 1.0, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    [pressed] = call.phone.events_of("dtmf_sent")
    [cleared] = call.phone.events_of("clear_received")
    assert pressed.t < cleared.t
    heard = call.phone.heard_pcm()
    greeting = openai_speech_at_8k(LONG_GREETING)
    assert best_match(heard, greeting[-24000:-8000]) < 0.5  # the end of the greeting was cut
    answer = openai_speech_at_8k("Renewals. What is your card number?")
    assert best_match(heard, answer[2000:10000]) > 0.8
    assert user_messages(world.openai.chat_requests[0]) == ["[DTMF: 1]"]
