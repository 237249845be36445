"""A real inbound call end to end: webhook → TwiML → media stream → STT → LLM → TTS → caller."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable

from patter._events import Event
from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InputAudioRawFrame,
    OutputAudioRawFrame,
)
from patter._pipeline import CallPipeline
from patter.testing.audio import best_match
from patter.testing.harness import (
    CALLER_NUMBER,
    PATTER_NUMBER,
    LoopbackWorld,
    openai_speech_at_8k,
    wait_for,
)

CALLER_SAYS = "I would like to book a table for two tonight."



async def test_serve_points_the_number_voice_webhook_at_itself(world: LoopbackWorld) -> None:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a test bot."))
    number = world.twilio.numbers[PATTER_NUMBER]
    assert number.voice_url == f"{world.public_url}/twilio/voice"
    assert number.voice_method == "POST"


async def test_caller_hears_disclosure_then_first_message(world: LoopbackWorld) -> None:
    phone = world.patter()
    agent = phone.agent("You are a test bot.", first_message="Hello, how can I help you today?")
    await world.serve(phone, agent)

    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(3.5, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    heard = call.phone.heard_pcm()
    disclosure = openai_speech_at_8k(agent.disclosure)
    greeting = openai_speech_at_8k("Hello, how can I help you today?")
    assert best_match(heard, disclosure[4000:12000]) > 0.6
    assert best_match(heard, greeting[2000:8000]) > 0.6
    assert world.openai.spoken[-1] == "Hello, how can I help you today?"
    media_url = f"wss://patter.loopback.test/twilio/media/{phone.instance_id}"
    assert f'<Connect><Stream url="{media_url}"' in (call.twiml or "")
    assert "<Hangup" in (call.twiml or "")


async def test_caller_speech_reaches_the_llm_and_its_reply_is_heard(world: LoopbackWorld) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with("Sure, a table for two at eight.")
    phone = world.patter()
    transcripts: list[Event] = []
    await world.serve(
        phone, phone.agent("You are a restaurant host."), on_transcript=transcripts.append
    )
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    before = len(call.phone.heard_pcm())
    voiced_before = call.phone.heard_voiced_s

    call.phone.say_text(CALLER_SAYS)
    await wait_for(lambda: bool(world.openai.chat_requests), timeout=20)
    request = world.openai.chat_requests[0]
    user_messages = [m for m in request["messages"] if m["role"] == "user"]
    assert user_messages == [{"role": "user", "content": CALLER_SAYS}]
    assert request["messages"][0]["role"] == "system"
    assert "restaurant host" in request["messages"][0]["content"]
    assert {t["function"]["name"] for t in request["tools"]} >= {"transfer_call", "end_call"}

    await call.phone.wait_for_heard(voiced_before + 1.0, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    reply = openai_speech_at_8k("Sure, a table for two at eight.")
    assert best_match(call.phone.heard_pcm()[before:], reply[2000:8000]) > 0.6
    assert [t["text"] for t in transcripts] == [CALLER_SAYS]


class AudioCounter(FrameProcessor):
    """A recorder's view: counts the caller's and the agent's audio frames reaching it."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: collections.Counter[str] = collections.Counter()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.frames["caller"] += 1
        elif isinstance(frame, OutputAudioRawFrame):
            self.frames["agent"] += 1
        await self.push_frame(frame, direction)


async def one_answered_line(world: LoopbackWorld,
                            customize: Callable[[CallPipeline], None]) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with("Sure, a table for two at eight.")
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a restaurant host.",
                                         customize_pipeline=customize))
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    voiced_before = call.phone.heard_voiced_s
    call.phone.say_text(CALLER_SAYS)
    await call.phone.wait_for_heard(voiced_before + 1.0, timeout=20)


async def test_caller_and_agent_audio_stop_where_the_default_chain_no_longer_uses_them(
        world: LoopbackWorld) -> None:
    audio_frames: collections.Counter[tuple[str, str]] = collections.Counter()

    def count_audio(pipeline: CallPipeline) -> None:  # looks, changes nothing
        for name in ("user_context", "llm", "transport_out", "assistant_context"):
            async def seen(_: FrameProcessor, frame: Frame, *__: object, name: str = name) -> None:
                if isinstance(frame, (InputAudioRawFrame, OutputAudioRawFrame)):
                    audio_frames[(name, type(frame).__name__)] += 1
            pipeline[name].add_event_handler("on_before_process_frame", seen)

    await one_answered_line(world, count_audio)

    assert audio_frames[("user_context", "InputAudioRawFrame")] > 50  # the caller's line
    assert audio_frames[("transport_out", "TTSAudioRawFrame")] > 0  # the agent's reply
    assert set(audio_frames) == {("user_context", "InputAudioRawFrame"),
                                 ("transport_out", "TTSAudioRawFrame")}


async def test_a_recorder_added_after_the_output_gets_the_caller_and_the_agent(
        world: LoopbackWorld) -> None:
    recorder = AudioCounter()
    await one_answered_line(
        world, lambda pipeline: pipeline.insert_after("transport_out", "recorder", recorder))

    assert recorder.frames["caller"] > 50 and recorder.frames["agent"] > 50


async def test_on_call_end_fires_once_with_both_roles(world: LoopbackWorld) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    phone = world.patter()
    ended: list[Event] = []
    started: list[Event] = []
    await world.serve(
        phone,
        phone.agent("You are a test bot.", first_message="Hi there."),
        on_call_start=started.append,
        on_call_end=ended.append,
    )
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    call.phone.say_text(CALLER_SAYS)
    await wait_for(lambda: len(world.openai.spoken) >= 2, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    assert len(started) == 1 and len(ended) == 1
    assert started[0]["caller"] == CALLER_NUMBER and started[0]["callee"] == PATTER_NUMBER
    assert started[0]["direction"] == "inbound"
    end = ended[0]
    roles = [entry["role"] for entry in end["transcript"]]
    assert "user" in roles and "assistant" in roles
    assert end.history == end["transcript"] == end.get("history")
    assert end["ended_by"] == "caller"
    assert end["call_sid"] == call.sid
    assert end["duration"] > 0
    assert all(
        entry["timestamp"].endswith("Z") and len(entry["timestamp"]) == 20 for entry in end.history
    )


async def test_deepgram_and_elevenlabs_swap_in_by_config(world: LoopbackWorld) -> None:
    world.deepgram.transcripts.append(CALLER_SAYS)
    world.openai.reply_with("Certainly.")
    phone = world.patter(stt="deepgram", tts="elevenlabs")
    transcripts: list[Event] = []
    await world.serve(
        phone,
        phone.agent("You are a test bot.", first_message="Hello."),
        on_transcript=transcripts.append,
    )
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    assert world.elevenlabs.spoken and world.openai.spoken == []
    call.phone.say_text(CALLER_SAYS)
    await wait_for(lambda: bool(world.openai.chat_requests), timeout=20)
    await wait_for(lambda: "Certainly." in " ".join(world.elevenlabs.spoken), timeout=20)
    assert [t["text"] for t in transcripts] == [CALLER_SAYS]
    assert world.openai.transcribed_audio == []
