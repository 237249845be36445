"""Services given as factories: every call builds its own STT, LLM and TTS, so calls at once
each get a whole conversation; custom voices get their own disclosure; no call opens an
LLM client of its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from openai import DefaultAsyncHttpxClient
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService

from patter import PatterConfigError
from patter.testing.audio import best_match
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import OPENAI_KEY, LoopbackWorld, openai_speech_at_8k

CALLER_SAYS = "I would like to book a table for two tonight."
FIRST_MESSAGE = "Hello, how can I help you today?"
FACTORY_MODEL = "gpt-factory-test"  # the built-in LLM would ask for patter._agent's default


def openai_factories(world: LoopbackWorld, *, voice: str = "nova") -> dict[str, Callable[[], Any]]:
    """Factories for the user's own OpenAI services, pointed at the fake."""
    base_url = world.openai.base_url
    return {
        "stt": lambda: OpenAISTTService(api_key=OPENAI_KEY, base_url=base_url),
        "tts": lambda: OpenAITTSService(
            api_key=OPENAI_KEY,
            base_url=base_url,
            sample_rate=24000,
            settings=OpenAITTSService.Settings(voice=voice),
        ),
        "llm": lambda: OpenAILLMService(
            api_key=OPENAI_KEY,
            base_url=base_url,
            settings=OpenAILLMService.Settings(model=FACTORY_MODEL),
        ),
    }


async def a_whole_conversation(call: FakeCall) -> bytes:
    """Hear the disclosure and ``FIRST_MESSAGE``, say one line, hear the answer; everything
    the caller heard."""
    phone = await call.wait_stream(timeout=30)
    await phone.wait_for_heard(3.5, timeout=30)
    await phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    voiced_before = phone.heard_voiced_s
    phone.say_text(CALLER_SAYS)
    await phone.wait_for_heard(voiced_before + 1.0, timeout=30)
    await phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    return phone.heard_pcm()


async def test_two_calls_at_once_each_get_their_own_services_from_the_factories(
        world: LoopbackWorld) -> None:
    world.openai.transcriber = lambda pcm, rate: CALLER_SAYS
    phone = world.patter(**openai_factories(world))
    agent = phone.agent("You are a restaurant host.", first_message=FIRST_MESSAGE)
    await world.serve(phone, agent)

    calls = await asyncio.gather(world.call_in(), world.call_in())
    heard = await asyncio.gather(*(a_whole_conversation(call) for call in calls))

    disclosure = openai_speech_at_8k(agent.disclosure)
    greeting = openai_speech_at_8k(FIRST_MESSAGE)
    reply = openai_speech_at_8k(f"You said: {CALLER_SAYS}")
    for pcm in heard:
        assert best_match(pcm, disclosure[4000:12000]) > 0.6
        assert best_match(pcm, greeting[2000:8000]) > 0.6
        assert best_match(pcm, reply[2000:8000]) > 0.6
    # Each call's LLM, built by the factory, got the agent's prompt.
    assert len(world.openai.chat_requests) >= 2
    for request in world.openai.chat_requests:
        assert request["model"] == FACTORY_MODEL
        assert request["messages"][0]["role"] == "system"
        assert "restaurant host" in request["messages"][0]["content"]


async def test_agents_with_different_custom_voices_get_their_own_disclosure(
        world: LoopbackWorld) -> None:
    phone = world.patter()
    disclosure = "Factory voices: this call is with an AI assistant."
    alloy = phone.agent("You are a test bot.", disclosure=disclosure,
                        tts=openai_factories(world, voice="alloy")["tts"])
    echo = phone.agent("You are a test bot.", disclosure=disclosure,
                       tts=openai_factories(world, voice="echo")["tts"])

    await phone.disclosure_audio(alloy)
    await phone.disclosure_audio(echo)
    await phone.disclosure_audio(alloy)  # cached by now

    rendered = [r.json["voice"] for r in world.openai.requests
                if r.path.endswith("/speech") and r.json["input"] == disclosure]
    assert rendered == ["alloy", "echo"]


async def test_calls_open_no_llm_client_of_their_own(
        world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a test bot.", first_message=FIRST_MESSAGE))
    opened: list[str] = []
    open_client = DefaultAsyncHttpxClient.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(type(self).__name__)
        open_client(self, *args, **kwargs)

    monkeypatch.setattr(DefaultAsyncHttpxClient, "__init__", counting_init)

    for _ in range(3):
        world.openai.transcripts.append(CALLER_SAYS)
        call = await world.call_in()
        await a_whole_conversation(call)
        assert call.phone is not None
        await call.phone.hang_up()
        await call.wait_ended()

    # Three calls answered (and their services built) over the one pool of the server run.
    assert len(world.openai.chat_requests) >= 3
    assert opened == []


async def test_a_factory_that_returns_no_service_fails_naming_the_setting(
        world: LoopbackWorld) -> None:
    phone = world.patter(tts=lambda: "nova")
    with pytest.raises(PatterConfigError, match=r"the tts= factory returned str.*lambda: "):
        await world.serve(phone, phone.agent("You are a test bot."))


async def test_a_factory_that_returns_one_object_twice_fails(world: LoopbackWorld) -> None:
    shared = OpenAITTSService(api_key=OPENAI_KEY, base_url=world.openai.base_url,
                              sample_rate=24000)
    phone = world.patter(tts=lambda: shared)
    with pytest.raises(PatterConfigError, match="every call needs its own"):
        await world.serve(phone, phone.agent("You are a test bot."))


async def test_two_agents_sharing_an_llm_factory_each_keep_their_prompt(
        world: LoopbackWorld) -> None:
    world.openai.transcriber = lambda pcm, rate: CALLER_SAYS
    phone = world.patter(llm=openai_factories(world)["llm"])
    await world.serve(phone, phone.agent("You are a restaurant host.", first_message=FIRST_MESSAGE))

    inbound = await world.call_in()
    await world.call_out(phone, phone.agent("You are a pirate.", first_message=FIRST_MESSAGE))
    outbound = await world.twilio.wait_for_call()
    await asyncio.gather(a_whole_conversation(inbound), a_whole_conversation(outbound))

    assert {r["model"] for r in world.openai.chat_requests} == {FACTORY_MODEL}
    prompts = {r["messages"][0]["content"] for r in world.openai.chat_requests}
    assert prompts == {"You are a pirate.", "You are a restaurant host."}
