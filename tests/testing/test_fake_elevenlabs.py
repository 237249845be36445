"""Pipecat's real ElevenLabs TTS services against FakeElevenLabs on the loopback interface."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService, ElevenLabsTTSService
from websockets.asyncio.client import connect

from patter.testing import FakeElevenLabs, Fault
from patter.testing.audio import best_match, synthesize_speech

PHONE_RATE = 8000


def make_tts(fake: FakeElevenLabs, api_key: str = "xi-test") -> ElevenLabsTTSService:
    return ElevenLabsTTSService(api_key=api_key, url=fake.url,
                                settings=ElevenLabsTTSService.Settings(voice="voice-rachel"))


async def test_elevenlabs_tts_speaks_8khz_audio_with_word_level_text_frames(
        pipeline: Any) -> None:
    text = "Your table for two is booked for seven tonight."
    async with FakeElevenLabs() as fake:
        async with pipeline([make_tts(fake)], audio_out_rate=PHONE_RATE) as p:
            await p.send(TTSSpeakFrame(text))
            await p.wait_for(lambda: bool(p.down(TTSStoppedFrame)))
        connection = fake.connections[0]
    frames = p.down(TTSAudioRawFrame)
    audio = b"".join(f.audio for f in frames)
    expected = synthesize_speech(text, sample_rate_hz=PHONE_RATE)
    assert {f.sample_rate for f in frames} == {PHONE_RATE}
    assert len(audio) == len(expected)
    assert best_match(audio, expected[8000:24000]) > 0.8  # one second from the middle
    words = p.down(TTSTextFrame)
    assert [w.text for w in words] == text.split()
    assert fake.spoken == [text]
    assert connection.voice_id == "voice-rachel"
    assert connection.params["output_format"] == "pcm_8000"
    assert connection.params["model_id"] == "eleven_flash_v2_5"
    context = next(iter(connection.contexts.values()))
    assert context.closed and context.generated == [text]
    assert "xi-api-key" not in connection.headers


async def test_elevenlabs_speaks_sentences_of_one_turn_in_one_context(pipeline: Any) -> None:
    text = "Hello there. How can I help you today?"
    async with FakeElevenLabs() as fake, pipeline([make_tts(fake)], audio_out_rate=16000) as p:
        await p.send(TTSSpeakFrame(text))
        await p.wait_for(lambda: bool(p.down(TTSStoppedFrame)))
    connection = fake.connections[0]
    assert connection.params["output_format"] == "pcm_16000"
    assert [w.text for w in p.down(TTSTextFrame)] == text.split()
    assert len(connection.contexts) == 1
    assert {f.sample_rate for f in p.down(TTSAudioRawFrame)} == {16000}


async def test_elevenlabs_closes_a_connection_with_a_wrong_api_key(pipeline: Any) -> None:
    async with (FakeElevenLabs(api_key="xi-right") as fake,
                pipeline([make_tts(fake, api_key="xi-wrong")], audio_out_rate=PHONE_RATE) as p):
        await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert fake.connections[0].rejected == "Invalid API key"
    assert fake.connections[0].messages == []


async def test_elevenlabs_http_stream_with_timestamps_gives_audio_and_words(
        pipeline: Any) -> None:
    text = "Please hold the line."
    async with FakeElevenLabs() as fake, aiohttp.ClientSession() as session:
        tts = ElevenLabsHttpTTSService(
            api_key="xi-test", base_url=fake.http_url, aiohttp_session=session,
            settings=ElevenLabsHttpTTSService.Settings(voice="voice-adam"))
        async with pipeline([tts], audio_out_rate=PHONE_RATE) as p:
            await p.send(TTSSpeakFrame(text))
            await p.wait_for(lambda: bool(p.down(TTSStoppedFrame)))
    audio = b"".join(f.audio for f in p.down(TTSAudioRawFrame))
    assert len(audio) == len(synthesize_speech(text, sample_rate_hz=PHONE_RATE))
    assert [w.text for w in p.down(TTSTextFrame)] == text.split()
    assert fake.voice_ids == ["voice-adam"]
    assert fake.http_requests[0]["params"]["output_format"] == "pcm_8000"


# ----- injected faults ------------------------------------------------------------------

FIRST = "Your table for two is booked for seven tonight."
SECOND = "Anything else?"


def audio_bytes(p: Any) -> int:
    return sum(len(f.audio) for f in p.down(TTSAudioRawFrame))


async def test_a_refused_handshake_is_an_error_and_the_next_sentence_is_spoken(
        pipeline: Any) -> None:
    async with FakeElevenLabs() as fake:
        fake.faults.add("socket", Fault.http(503, retry_after_s=1))
        async with pipeline([make_tts(fake)], audio_out_rate=PHONE_RATE) as p:
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
            await p.send(TTSSpeakFrame(SECOND))
            await p.wait_for(lambda: SECOND in fake.spoken and bool(p.down(TTSStoppedFrame)))
    assert "HTTP 503" in p.up(ErrorFrame)[0].error
    assert len(fake.connections) == 2 and fake.connections[0].messages == []


async def test_a_dropped_socket_loses_the_text_in_flight_then_reconnects(pipeline: Any) -> None:
    async with FakeElevenLabs() as fake:
        fake.faults.add("socket", Fault.drop())
        async with pipeline([make_tts(fake)], audio_out_rate=PHONE_RATE) as p:
            await p.send(TTSSpeakFrame(FIRST))
            await fake.wait_until(lambda: len(fake.connections) == 2)  # it reconnected
            await p.send(TTSSpeakFrame(SECOND))
            await p.wait_for(lambda: SECOND in fake.spoken and audio_bytes(p) > 0)
    assert fake.spoken == [SECOND]
    assert fake.connections[0].messages == [] and len(fake.connections) == 2


async def test_a_cut_socket_delivers_only_the_first_audio_chunk(pipeline: Any) -> None:
    async with FakeElevenLabs() as fake:
        fake.faults.add("socket", Fault.cut())
        async with pipeline([make_tts(fake)], audio_out_rate=PHONE_RATE) as p:
            await p.send(TTSSpeakFrame(FIRST))
            await fake.wait_until(lambda: fake.connections[0].closed)
            await p.wait_for(lambda: audio_bytes(p) > 0)
            first = audio_bytes(p)
            await p.send(TTSSpeakFrame(SECOND))
            await p.wait_for(lambda: SECOND in fake.spoken and audio_bytes(p) > first)
    full = len(synthesize_speech(FIRST, sample_rate_hz=PHONE_RATE))
    assert first <= full // 4  # one 150 ms chunk of a few seconds of speech
    assert fake.spoken == [FIRST, SECOND]


async def test_a_hanging_handshake_never_opens_the_socket() -> None:
    async with FakeElevenLabs() as fake:
        fake.faults.add("socket", Fault.hang())
        with pytest.raises(TimeoutError):
            await connect(f"{fake.url}/v1/text-to-speech/v1/multi-stream-input",
                          open_timeout=0.3, additional_headers={"xi-api-key": "xi-test"})
    assert [f.fault.kind for f in fake.faults.fired] == ["hang"]
