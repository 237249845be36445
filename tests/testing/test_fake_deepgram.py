"""Pipecat's real DeepgramSTTService against FakeDeepgram on the loopback interface."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.services.deepgram.stt import DeepgramSTTService
from websockets.asyncio.client import connect

from patter.testing import FakeDeepgram, Fault
from patter.testing.audio import silence, synthesize_speech

PHONE_RATE = 8000


def audio_frames(pcm: bytes, rate: int = PHONE_RATE) -> list[InputAudioRawFrame]:
    """``pcm`` cut into 20 ms input frames, as a phone transport delivers it."""
    step = rate * 2 // 50
    return [InputAudioRawFrame(pcm[i:i + step], rate, 1) for i in range(0, len(pcm), step)]


def make_stt(fake: FakeDeepgram, api_key: str = "dg-test", **settings: Any) -> DeepgramSTTService:
    return DeepgramSTTService(api_key=api_key, base_url=fake.base_url,
                              settings=DeepgramSTTService.Settings(**settings))


async def test_deepgram_stt_gives_interim_and_final_transcripts_for_an_espeak_utterance(
        pipeline: Any) -> None:
    speech = synthesize_speech("I would like to book a table for two", sample_rate_hz=PHONE_RATE)
    audio = silence(0.3) + speech + silence(0.6)
    async with FakeDeepgram() as fake:
        fake.transcripts.append("I would like to book a table for two.")
        async with pipeline([make_stt(fake)], audio_in_rate=PHONE_RATE) as p:
            await p.send(*audio_frames(audio))
            await p.wait_for(lambda: bool(p.down(TranscriptionFrame)))
        connection = fake.connections[0]
    interim = p.down(InterimTranscriptionFrame)
    assert [f.text for f in interim] == ["I would like to"]  # half the words
    assert [f.text for f in p.down(TranscriptionFrame)] == ["I would like to book a table for two."]
    final = fake.results[-1]
    assert final["is_final"] and final["speech_final"]
    words = final["channel"]["alternatives"][0]["words"]
    assert [w["punctuated_word"] for w in words][-1] == "two."
    assert 0.2 <= words[0]["start"] < words[-1]["end"] <= 0.3 + len(speech) / 2 / PHONE_RATE
    assert connection.params["sample_rate"] == "8000"
    assert connection.params["encoding"] == "linear16"
    assert connection.params["interim_results"] == "true"
    assert bytes(connection.audio) == audio[: len(connection.audio)]
    assert "authorization" not in connection.headers


async def test_finalize_ends_the_pending_utterance_at_once_with_from_finalize(
        pipeline: Any) -> None:
    speech = synthesize_speech("Cancel my order", sample_rate_hz=PHONE_RATE)
    async with FakeDeepgram() as fake:
        fake.transcripts.append("Cancel my order.")
        async with pipeline([make_stt(fake, utterance_end_ms=1000)],
                            audio_in_rate=PHONE_RATE) as p:
            await p.send(*audio_frames(silence(0.2) + speech))
            await fake.wait_until(lambda: len(fake.connections[0].audio) >= len(speech))
            await p.send(VADUserStoppedSpeakingFrame())
            await p.wait_for(lambda: bool(p.down(TranscriptionFrame)))
        await fake.wait_until(lambda: fake.connections[0].closed)
    connection = fake.connections[0]
    final = fake.results[-1]
    assert final["from_finalize"] is True and final["is_final"] is True
    assert [f.text for f in p.down(TranscriptionFrame)] == ["Cancel my order."]
    assert [m["type"] for m in connection.control_messages] == ["Finalize", "CloseStream"]
    assert connection.params["utterance_end_ms"] == "1000"


async def test_the_raw_protocol_answers_keepalive_and_close_stream_with_results_and_metadata(
        ) -> None:
    speech = synthesize_speech("Yes please", sample_rate_hz=16000)
    async with FakeDeepgram() as fake:
        fake.transcripts.append("Yes, please.")
        url = f"{fake.base_url}/v1/listen?encoding=linear16&sample_rate=16000&utterance_end_ms=1000"
        async with connect(url, additional_headers={"Authorization": "Token dg-test"}) as ws:
            await ws.send(json.dumps({"type": "KeepAlive"}))
            quiet = silence(0.2, sample_rate_hz=16000)
            await ws.send(quiet + speech + quiet * 6)
            await ws.send(json.dumps({"type": "CloseStream"}))
            messages = [json.loads(m) async for m in ws]
    assert [m["type"] for m in messages] == ["Results", "UtteranceEnd", "Metadata"]
    assert messages[0]["channel"]["alternatives"][0]["transcript"] == "Yes, please."
    assert messages[0]["speech_final"] is True
    assert messages[1]["last_word_end"] <= messages[0]["start"] + messages[0]["duration"]
    assert messages[2]["duration"] == pytest.approx(1.4 + len(speech) / 32000, abs=0.02)
    assert fake.connections[0].control_messages == [{"type": "KeepAlive"},
                                                    {"type": "CloseStream"}]


async def test_deepgram_rejects_a_wrong_api_key_at_the_handshake(pipeline: Any) -> None:
    async with (FakeDeepgram(api_key="dg-right") as fake,
                pipeline([make_stt(fake, api_key="dg-wrong")], audio_in_rate=PHONE_RATE) as p):
        await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert "401" in p.up(ErrorFrame)[0].error
    assert fake.connections[0].sent == []


# ----- injected faults ------------------------------------------------------------------


async def test_a_refused_handshake_is_an_error_and_the_service_connects_again(
        pipeline: Any) -> None:
    speech = synthesize_speech("I would like to book a table", sample_rate_hz=PHONE_RATE)
    async with FakeDeepgram() as fake:
        fake.transcripts.append("I would like to book a table.")
        fake.faults.add("listen", Fault.http(500))
        async with pipeline([make_stt(fake)], audio_in_rate=PHONE_RATE) as p:
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
            await p.send(*audio_frames(silence(0.3) + speech + silence(0.6)))
            await p.wait_for(lambda: bool(p.down(TranscriptionFrame)))
    assert "500" in p.up(ErrorFrame)[0].error
    assert len(fake.connections) == 2 and fake.connections[0].sent == []
    assert [f.fault.status for f in fake.faults.fired] == [500]


async def test_a_dropped_socket_dies_without_a_close_frame(pipeline: Any) -> None:
    speech = synthesize_speech("Hello", sample_rate_hz=PHONE_RATE)
    async with FakeDeepgram() as fake:
        fake.faults.add("listen", Fault.drop())
        async with pipeline([make_stt(fake)], audio_in_rate=PHONE_RATE) as p:
            await p.send(*audio_frames(silence(0.2) + speech))
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert "no close frame" in p.up(ErrorFrame)[0].error
    assert fake.connections[0].closed and fake.connections[0].audio == bytearray()


async def test_a_cut_socket_sends_one_message_then_dies(pipeline: Any) -> None:
    speech = synthesize_speech("I would like to book a table for two", sample_rate_hz=PHONE_RATE)
    async with FakeDeepgram() as fake:
        fake.transcripts.append("I would like to book a table for two.")
        fake.faults.add("listen", Fault.cut())
        async with pipeline([make_stt(fake)], audio_in_rate=PHONE_RATE) as p:
            await p.send(*audio_frames(silence(0.3) + speech + silence(0.6)))
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert [f.text for f in p.down(InterimTranscriptionFrame)] == ["I would like to"]
    assert not p.down(TranscriptionFrame)
    assert len(fake.connections[0].sent) == 1


async def test_a_hanging_handshake_never_opens_the_socket() -> None:
    async with FakeDeepgram() as fake:
        fake.faults.add("listen", Fault.hang())
        with pytest.raises(TimeoutError):
            await connect(f"{fake.base_url}/v1/listen", open_timeout=0.3,
                          additional_headers={"Authorization": "Token dg-test"})
    assert [f.fault.kind for f in fake.faults.fired] == ["hang"]
