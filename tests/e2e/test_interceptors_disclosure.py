"""The AI disclosure, end to end: first on every call, never interrupted, rendered once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from patter._agent import DEFAULT_DISCLOSURE
from patter._events import Event
from patter._pipeline import CallPipeline
from patter.errors import PatterConfigError
from patter.processors.checkpoint import PlayoutCheckpointProbe
from patter.testing.audio import best_match
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for

CALLER_SAYS = "I need help with my bill."
GREETING = "Hello, this is the billing desk."
CHUNK_MS = 40  # Patter sends agent audio in 40 ms chunks, each closed by a mark



def speech_requests(world: LoopbackWorld, text: str) -> int:
    """How many times the fake OpenAI was asked to synthesise ``text``."""
    return sum(1 for r in world.openai.requests
               if r.path.endswith("/audio/speech") and (r.json or {}).get("input") == text)


async def test_the_disclosure_cannot_be_emptied_or_switched_off(world: LoopbackWorld) -> None:
    phone = world.patter()
    assert phone.agent("You are a test bot.").disclosure == DEFAULT_DISCLOSURE
    for attempt in ("", "   ", None, False):
        with pytest.raises(PatterConfigError, match="cannot be empty"):
            phone.agent("You are a test bot.", disclosure=attempt)  # type: ignore[arg-type]


async def test_a_pipeline_customisation_cannot_switch_the_disclosure_off(
        world: LoopbackWorld, caplog: pytest.LogCaptureFixture) -> None:
    def drop_disclosure(pipeline: CallPipeline) -> None:
        pipeline.replace("disclosure_player", PlayoutCheckpointProbe())

    phone = world.patter()
    ended: list[Event] = []
    agent = phone.agent("You are a test bot.", first_message=GREETING,
                        customize_pipeline=drop_disclosure)
    with caplog.at_level(logging.ERROR, logger="patter"):
        await world.serve(phone, agent, on_call_end=ended.append)
        call = await world.call_in()
        await wait_for(lambda: bool(ended), timeout=20)
    assert ended[0]["ended_by"] == "error"
    assert "the AI disclosure cannot be switched off" in caplog.text
    assert call.phone is not None and call.phone.heard_voiced_s == 0


async def test_the_disclosure_plays_whole_before_the_first_message(world: LoopbackWorld) -> None:
    phone = world.patter()
    messages: list[Event] = []
    agent = phone.agent("You are a billing assistant.", first_message=GREETING,
                        disclosure="This call is with an AI assistant from Acme.")
    await world.serve(phone, agent, on_message=messages.append)
    call = await world.call_in()
    assert call.phone is not None
    disclosure = await phone.disclosure_audio(agent)
    await wait_for(lambda: GREETING in world.openai.spoken, timeout=20)
    first_message_asked_at_s = call.phone.heard_voiced_s
    await wait_for(lambda: len(messages) >= 2, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    # Heard in order: the whole disclosure first, then the greeting.
    heard = call.phone.heard_pcm()
    assert best_match(heard[:len(disclosure) + 1600], disclosure) > 0.9
    assert best_match(heard[len(disclosure):], openai_speech_at_8k(GREETING)[2000:10000]) > 0.8
    assert call.phone.events_of("clear_received") == []
    # The greeting was synthesised while the disclosure played, not after it.
    assert first_message_asked_at_s < len(disclosure) / 16000
    assert [(m["role"], m["text"]) for m in messages] == [
        ("assistant", "This call is with an AI assistant from Acme."), ("assistant", GREETING)]
    assert messages[0]["history"][0]["text"] == "This call is with an AI assistant from Acme."


async def test_speech_and_keys_during_the_disclosure_are_held_then_processed_in_order(
        world: LoopbackWorld) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    phone = world.patter()
    agent = phone.agent("You are a billing assistant.")
    await world.serve(phone, agent)
    call = await world.call_in()
    assert call.phone is not None
    disclosure = await phone.disclosure_audio(agent)
    disclosure_ms = len(disclosure) / 16

    await call.phone.wait_for_heard(0.2, timeout=20)
    said = call.phone.say_text(CALLER_SAYS)
    await call.phone.wait_said()
    call.phone.press("5")
    await wait_for(lambda: len(world.openai.chat_requests) >= 2, timeout=30)

    # The caller spoke and pressed 5 while the disclosure was still playing...
    disclosure_heard_at = min(e.t for e in call.phone.events_of("mark_echoed")
                              if float(e.data["name"]) >= disclosure_ms - CHUNK_MS)
    assert call.phone.events_of("dtmf_sent")[0].t < disclosure_heard_at
    # ...yet it played whole (up to a last partial chunk of silence), never cleared...
    assert best_match(call.phone.heard_pcm(), disclosure[:-CHUNK_MS * 16]) > 0.9
    assert call.phone.events_of("clear_received") == []
    # ...and nothing was lost: the speech reached STT whole, then the LLM, then the key.
    assert best_match(world.openai.transcribed_audio[0].pcm, said[2000:10000]) > 0.9
    final = world.openai.chat_requests[-1]["messages"]
    assert [m["content"] for m in final if m["role"] == "user"] == [CALLER_SAYS, "[DTMF: 5]"]
    first = world.openai.chat_requests[0]["messages"]
    assert [m["content"] for m in first if m["role"] == "user"] == [CALLER_SAYS]


async def test_the_disclosure_is_rendered_once_and_then_read_from_memory_and_disk(
        world: LoopbackWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATTER_CACHE_DIR", str(tmp_path))
    text = "You are speaking with an automated assistant."
    phone = world.patter()
    agent = phone.agent("You are a test bot.", disclosure=text)
    await world.serve(phone, agent)
    for _ in range(2):
        call = await world.call_in()
        assert call.phone is not None
        await call.phone.wait_for_heard(1.0, timeout=20)
        await call.phone.hang_up()
        await call.wait_ended()
    assert speech_requests(world, text) == 1
    assert list(tmp_path.glob("*.pcm"))

    await world.stop_serving()
    restarted = world.patter()
    await world.serve(restarted, restarted.agent("You are a test bot.", disclosure=text))
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(1.0, timeout=20)
    assert speech_requests(world, text) == 1
    assert best_match(call.phone.heard_pcm(), openai_speech_at_8k(text)[2000:8000]) > 0.8
