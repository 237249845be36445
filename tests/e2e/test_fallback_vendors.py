"""Fallback vendor lists: when the first STT, LLM or TTS of a list fails on a call, the next
takes over for the rest of the call, and the caller's line is still answered. Each scenario
runs in a world of its own, all at once."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pipecat.services.openai.llm import OpenAILLMService

from patter._agent import DEFAULT_DISCLOSURE
from patter._events import Event
from patter.testing import Fault
from patter.testing.audio import best_match, synthesize_speech
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import (
    OPENAI_KEY,
    LoopbackWorld,
    agent_turn_over,
    openai_speech_at_8k,
    wait_for,
)

CALLER_SAYS = "I would like to book a table for two tonight."
REPLY = "Certainly, a table for two at eight."
FOLLOW_UP = "And could we sit by the window?"
FOLLOW_UP_REPLY = "Of course, a window table it is."
FALLBACK_MODEL = "gpt-fallback-test"
SECRETS: set[str] = set()  # every world's keys and tokens: none may be logged


async def caller_is_answered(call: FakeCall, line: str) -> bytes:
    """On ``call``, say ``line`` and wait for the answer; what was heard from then on."""
    phone = await call.wait_stream(timeout=30)
    await phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    before = len(phone.heard_pcm())
    phone.say_text(line)
    assert await agent_turn_over(phone, answer_timeout_s=20), f"no answer to {line!r}"
    return phone.heard_pcm()[before:]


async def hang_up(call: FakeCall, ended: list[Event]) -> Event:
    assert call.phone is not None
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=15)
    return ended[0]


def assistant_lines(end: Event) -> list[str]:
    return [entry["text"] for entry in end["transcript"] if entry["role"] == "assistant"]


async def tts_fallback() -> None:
    async with LoopbackWorld() as world:
        SECRETS.update(world.secrets)
        world.openai.transcripts += [CALLER_SAYS, FOLLOW_UP]
        world.openai.reply_with(REPLY)
        world.openai.reply_with(FOLLOW_UP_REPLY)
        phone = world.patter(tts=["openai", "elevenlabs"])
        ended: list[Event] = []
        await world.serve(phone, phone.agent("You are a host."), on_call_end=ended.append)
        # OpenAI speech fails for the answer (Patter's one quick retry too).
        world.openai.faults.add("speech", Fault.http(500), times=2)
        call = await world.call_in()

        heard = await caller_is_answered(call, CALLER_SAYS)
        assert call.phone is not None  # the disclosure, rendered by the first TTS of the list
        disclosure = openai_speech_at_8k(DEFAULT_DISCLOSURE)
        assert best_match(call.phone.heard_pcm(), disclosure[4000:12000]) > 0.6
        reply = synthesize_speech(REPLY, sample_rate_hz=8000)  # ElevenLabs' fake voice at 8 kHz
        assert best_match(heard, reply[:6000]) > 0.6 and best_match(heard, reply[-6000:]) > 0.6
        assert [(f.request, f.fault.status) for f in world.openai.faults.fired] == [
            ("speech", 500)] * 2
        speech_requests = len([r for r in world.openai.requests if r.path.endswith("/speech")])

        # The rest of the call stays on ElevenLabs: OpenAI is not asked again.
        heard = await caller_is_answered(call, FOLLOW_UP)
        follow_up = synthesize_speech(FOLLOW_UP_REPLY, sample_rate_hz=8000)
        assert best_match(heard, follow_up[:6000]) > 0.6
        assert world.elevenlabs.spoken[-2:] == [REPLY, FOLLOW_UP_REPLY]
        assert len([r for r in world.openai.requests if r.path.endswith("/speech")]) == (
            speech_requests)
        end = await hang_up(call, ended)
        assert assistant_lines(end)[-2:] == [REPLY, FOLLOW_UP_REPLY]


async def llm_fallback() -> None:
    async with LoopbackWorld() as world:
        SECRETS.update(world.secrets)
        world.openai.transcripts.append(CALLER_SAYS)
        world.openai.reply_with(REPLY)
        fallback = lambda: OpenAILLMService(  # noqa: E731
            api_key=OPENAI_KEY, base_url=world.openai.base_url,
            settings=OpenAILLMService.Settings(model=FALLBACK_MODEL))
        phone = world.patter(llm=["openai", fallback])
        ended: list[Event] = []
        await world.serve(phone, phone.agent("You are a restaurant host."),
                          on_call_end=ended.append)
        world.openai.faults.add("chat", Fault.http(500), times=2)  # with the SDK's one retry
        call = await world.call_in()

        heard = await caller_is_answered(call, CALLER_SAYS)
        assert best_match(heard, openai_speech_at_8k(REPLY)[2000:8000]) > 0.6
        requests = world.openai.chat_requests
        assert [r["model"] for r in requests][-1] == FALLBACK_MODEL
        asked_again: dict[str, Any] = requests[-1]
        # The next LLM got the same question, the agent's prompt and the call's tools.
        assert asked_again["messages"][0]["role"] == "system"
        assert "restaurant host" in asked_again["messages"][0]["content"]
        assert asked_again["messages"][-1] == {"role": "user", "content": CALLER_SAYS}
        assert {t["function"]["name"] for t in asked_again["tools"]} >= {"transfer_call"}
        end = await hang_up(call, ended)
        assert assistant_lines(end)[-1] == REPLY


async def stt_fallback() -> None:
    async with LoopbackWorld() as world:
        SECRETS.update(world.secrets)
        world.openai.transcripts.append(CALLER_SAYS)
        world.openai.reply_with(REPLY)
        phone = world.patter(stt=["deepgram", "openai"])
        ended: list[Event] = []
        await world.serve(phone, phone.agent("You are a host."), on_call_end=ended.append)
        world.deepgram.faults.add("listen", Fault.http(503), times=10)  # Deepgram is down
        call = await world.call_in()

        heard = await caller_is_answered(call, CALLER_SAYS)
        assert best_match(heard, openai_speech_at_8k(REPLY)[2000:8000]) > 0.6
        # Deepgram was tried (and given up on after 5 refusals); OpenAI heard the caller.
        assert [f.fault.status for f in world.deepgram.faults.fired] == [503] * 5
        assert len(world.openai.transcribed_audio) == 1
        assert world.openai.chat_requests[-1]["messages"][-1]["content"] == CALLER_SAYS
        end = await hang_up(call, ended)
        assert [e["text"] for e in end["transcript"] if e["role"] == "user"] == [CALLER_SAYS]


async def test_a_failed_vendor_hands_the_call_to_the_next_in_its_list(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with asyncio.TaskGroup() as calls:
        for scenario in (tts_fallback, llm_fallback, stt_fallback):
            calls.create_task(scenario(), name=scenario.__name__)
    assert caplog.messages.count(
        "vendor failed; the next one takes over for the rest of the call") == 3
    assert not any(secret in caplog.text for secret in SECRETS)
