"""Streaming vendors whose socket dies mid-call reconnect without losing a word: Deepgram
replays the caller's audio it had not confirmed, ElevenLabs says again what it had not
voiced. Each scenario runs in a world of its own, all at once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from patter._events import Event
from patter.testing import Fault
from patter.testing.audio import best_match, synthesize_speech, voiced_seconds
from patter.testing.harness import LoopbackWorld, agent_turn_over, openai_speech_at_8k, wait_for
from patter.testing.wer import normalize_words

CALLER_SAYS = "I would like to book a table for two people by the window tonight please."
REPLY = "Certainly, I have booked a table for two by the window at eight o'clock tonight."
SECRETS: set[str] = set()  # every world's keys and tokens: none may be logged


def words_heard(line: str) -> object:
    """A transcriber for the fake Deepgram that hears as many of ``line``'s words as the
    audio it got holds: audio lost is words lost."""
    words = line.split()
    whole_s = voiced_seconds(synthesize_speech(line))

    def transcribe(pcm: bytes, rate: int) -> str:
        share = voiced_seconds(pcm, sample_rate_hz=rate) / whole_s
        return " ".join(words[:round(len(words) * min(1.0, share + 0.05))])

    return transcribe


async def deepgram_drop_mid_utterance() -> None:
    async with LoopbackWorld() as world:
        SECRETS.update(world.secrets)
        world.deepgram.transcriber = words_heard(CALLER_SAYS)  # type: ignore[assignment]
        world.openai.reply_with(REPLY)
        phone = world.patter(stt="deepgram")
        ended: list[Event] = []
        await world.serve(phone, phone.agent("You are a host."), on_call_end=ended.append)
        call = await world.call_in()
        caller = await call.wait_stream(timeout=30)
        await caller.wait_until_quiet(quiet_s=0.6, timeout=30)
        before = len(caller.heard_pcm())
        caller.say_text(CALLER_SAYS)
        # Deepgram has started hearing the sentence (an interim result): its socket dies.
        await world.deepgram.wait_until(
            lambda: any(not r["is_final"] for r in world.deepgram.results), timeout=15)
        assert world.deepgram.drop_open_sockets() == 1
        assert await agent_turn_over(caller, answer_timeout_s=20), "the caller was not answered"

        assert best_match(caller.heard_pcm()[before:], openai_speech_at_8k(REPLY)[2000:8000]) > 0.6
        first, second = world.deepgram.connections[:2]
        assert not any(m.get("is_final") for m in first.sent if m.get("type") == "Results")
        assert world.deepgram.utterances == [CALLER_SAYS]  # heard whole on the new socket
        assert world.openai.chat_requests[-1]["messages"][-1] == {
            "role": "user", "content": CALLER_SAYS}
        await caller.hang_up()
        await wait_for(lambda: bool(ended), timeout=15)
        assert [e["text"] for e in ended[0]["transcript"] if e["role"] == "user"] == [CALLER_SAYS]
        assert second.closed and len(world.deepgram.connections) == 2  # none after the end


async def elevenlabs_lost_mid_sentence(fault: Fault) -> None:
    async with LoopbackWorld() as world:
        SECRETS.update(world.secrets)
        world.openai.transcripts.append("Can I book a table?")
        world.openai.reply_with(REPLY)
        phone = world.patter(tts="elevenlabs")
        ended: list[Event] = []
        await world.serve(phone, phone.agent("You are a host."), on_call_end=ended.append)
        world.elevenlabs.faults.add("socket", fault)  # the call's socket (the disclosure is done)
        call = await world.call_in()
        caller = await call.wait_stream(timeout=30)
        await caller.wait_until_quiet(quiet_s=0.6, timeout=30)
        before = len(caller.heard_pcm())
        caller.say_text("Can I book a table?")
        assert await agent_turn_over(caller, answer_timeout_s=20), "the caller was not answered"

        heard = caller.heard_pcm()[before:]
        reply = synthesize_speech(REPLY, sample_rate_hz=8000)  # the fake's voice at 8 kHz
        assert best_match(heard, reply[:6000]) > 0.6, "the start of the answer is missing"
        assert best_match(heard, reply[-6000:]) > 0.6, "the end of the answer is missing"
        assert [f.fault.kind for f in world.elevenlabs.faults.fired] == [fault.kind]
        lost, resumed = world.elevenlabs.connections[-2:]
        assert lost.closed
        assert " ".join(c for ctx in resumed.contexts.values() for c in ctx.generated) in REPLY
        await caller.hang_up()
        await wait_for(lambda: bool(ended), timeout=15)
        said = [e["text"] for e in ended[0]["transcript"] if e["role"] == "assistant"]
        assert normalize_words(said[-1]) == normalize_words(REPLY)


async def test_streaming_sockets_that_die_mid_call_lose_no_words(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with asyncio.TaskGroup() as calls:
        calls.create_task(deepgram_drop_mid_utterance(), name="deepgram drop")
        calls.create_task(elevenlabs_lost_mid_sentence(Fault.cut()), name="elevenlabs cut")
        calls.create_task(elevenlabs_lost_mid_sentence(Fault.drop()), name="elevenlabs drop")
    assert "deepgram socket lost; reconnecting" in caplog.messages
    assert "elevenlabs reconnected; saying again what the socket lost" in caplog.messages
    assert not any(secret in caplog.text for secret in SECRETS)
