"""Pipecat's real ElevenLabs TTS services against FakeElevenLabs on the loopback interface."""

from __future__ import annotations

from typing import Any

import aiohttp
from pipecat.frames.frames import (
    ErrorFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from pipecat.services.elevenlabs.tts import ElevenLabsHttpTTSService, ElevenLabsTTSService

from patter.testing import FakeElevenLabs
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
