"""A FailoverSwitcher over two TTS vendors: a failed vendor's sentence is said by the next,
which keeps the rest of the call; the last vendor left is never retired by an error."""

from __future__ import annotations

from typing import Any

from pipecat.services.openai.tts import OpenAITTSService

from patter._failover import FailoverSwitcher
from patter._pipecat import TTSSpeakFrame, TTSStoppedFrame
from patter.testing import Fault
from patter.testing.fake_openai import FakeOpenAI


def openai_tts(fake: FakeOpenAI, voice: str) -> OpenAITTSService:
    return OpenAITTSService(api_key="sk-test", base_url=fake.base_url, sample_rate=24000,
                            settings=OpenAITTSService.Settings(voice=voice))


def speech_requests(fake: FakeOpenAI) -> list[tuple[str, str]]:
    """(voice, text) of each speech request, faulted or not."""
    return [(r.json["voice"], r.json["input"]) for r in fake.requests
            if r.path.endswith("/speech")]


async def test_the_next_tts_says_the_failed_sentence_and_the_last_one_is_kept(
        pipeline: Any) -> None:
    async with FakeOpenAI(api_key="sk-test") as fake:
        first, second = openai_tts(fake, "alloy"), openai_tts(fake, "echo")
        async with pipeline([FailoverSwitcher([first, second], kind="tts")],
                            audio_out_rate=24000) as p:
            fake.faults.add("speech", Fault.http(500), times=3)  # with the SDK's 2 retries
            await p.send(TTSSpeakFrame("One."))
            await p.wait_for(lambda: fake.spoken == ["One."], timeout=15)
            await p.send(TTSSpeakFrame("Two."))
            await p.wait_for(lambda: fake.spoken == ["One.", "Two."], timeout=15)
            # The last vendor left fails too: its sentence is lost, but it stays on the call.
            fake.faults.add("speech", Fault.http(500), times=3)
            await p.send(TTSSpeakFrame("Three."))
            await p.wait_for(lambda: len(fake.faults.fired) == 6, timeout=15)
            await p.send(TTSSpeakFrame("Four."))
            await p.wait_for(lambda: fake.spoken == ["One.", "Two.", "Four."], timeout=15)
            await p.wait_for(lambda: len(p.down(TTSStoppedFrame)) >= 3, timeout=15)
        assert speech_requests(fake) == [("alloy", "One.")] * 3 + [
            ("echo", "One."), ("echo", "Two."), *[("echo", "Three.")] * 3, ("echo", "Four.")]
        assert not first.is_usable and second.is_usable
