"""A caller turn with no words (a laugh, a cough, speech the STT cannot read): answered when
it cut the agent's answer off, ignored when the agent had answered in full.

The caller's sound is real speech (so every VAD takes it for the caller) that the fake STT
reads as no words at all, as a real STT does with mumbling or a language it does not know."""

from __future__ import annotations

import pytest

from patter._pipecat import DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT
from patter.testing.audio import best_match
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for
from patter.testing.scenes import QUESTION, REPLY, reply_playing

MUMBLE = "Oh I see what you mean there."
"""Speech with no pause long enough to split it into two turns (checked with espeak-ng)."""
PICK_UP = "Sorry, I missed that. Could you say it again?"
WORDLESS_NOTE = {"role": "developer", "content": DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT}


async def test_a_wordless_turn_that_cut_the_reply_gets_the_agent_to_pick_up_again(
        world: LoopbackWorld) -> None:
    scene = await reply_playing(world, next_transcript="", next_reply=PICK_UP)
    phone = scene.phone
    await phone.wait_for_heard(phone.heard_voiced_s + 2.0, timeout=30)

    phone.say_text(MUMBLE)
    await phone.wait_for_received("clear", timeout=10)
    voiced_at_clear = phone.heard_voiced_s
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    await phone.wait_for_heard(voiced_at_clear + 1.0, timeout=30)

    # The LLM saw the words heard, then the note that the caller's sound was not understood.
    messages = world.openai.chat_requests[1]["messages"]
    assert messages[-1] == WORDLESS_NOTE
    assert messages[-2]["role"] == "assistant"
    cut = messages[-2]["content"]
    assert REPLY.startswith(cut) and 3 <= len(cut.split()) < len(REPLY.split())
    # The caller heard the agent pick up again instead of silence.
    assert best_match(phone.heard_pcm(), openai_speech_at_8k(PICK_UP)[2000:8000]) > 0.8
    history = await scene.history_at_end()
    assert [(e["role"], e["text"]) for e in history[-3:]] == [
        ("user", QUESTION), ("assistant", cut), ("assistant", PICK_UP)]


async def test_a_wordless_turn_after_a_full_answer_gets_no_answer(world: LoopbackWorld) -> None:
    read_as = [QUESTION]  # what the fake STT reads in whatever the caller says now
    world.openai.transcriber = lambda _pcm, _rate: read_as[0]
    world.openai.reply_with("We open at five.")
    world.openai.reply_with("At five in the evening.")
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a restaurant host."))
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    call.phone.say_text(QUESTION)
    await wait_for(lambda: len(world.openai.chat_requests) == 1, timeout=30)
    await call.phone.wait_for_heard(call.phone.heard_voiced_s + 0.5, timeout=30)
    await call.phone.wait_until_quiet(quiet_s=0.8, timeout=30)

    read_as[0] = ""
    call.phone.say_text(MUMBLE)
    await wait_for(lambda: len(world.openai.transcribed_audio) >= 2, timeout=30)
    with pytest.raises(TimeoutError):  # the wordless turn is not answered ...
        await wait_for(lambda: len(world.openai.chat_requests) > 1, timeout=3)
    read_as[0] = QUESTION
    call.phone.say_text(QUESTION)  # ... and the caller's next words are, as usual
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)

    messages = world.openai.chat_requests[1]["messages"]
    assert WORDLESS_NOTE not in messages
    assert messages[-1] == {"role": "user", "content": QUESTION}
