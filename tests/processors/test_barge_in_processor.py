"""BargeInGuard: caller sound pauses the agent, a false alarm resumes it, echo is muted."""

from __future__ import annotations

import audioop
from typing import Any

import numpy as np
import pytest

from patter._pipecat import (
    BotStartedSpeakingFrame,
    ErrorFrame,
    InputAudioRawFrame,
    InterruptionFrame,
)
from patter._prewarm import build_kit
from patter.errors import PatterConfigError
from patter.processors.barge_in import BargeInGuard
from patter.testing.audio import silence, synthesize_speech, tone
from patter.testing.harness import LoopbackWorld, wait_for
from patter.testing.scenes import INTERRUPTION
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_speech import TwilioAgentSpeech

RATE = 8000
AGENT = synthesize_speech("Our restaurant opens at five in the evening every day of the week.")


def caller_frames(pcm: bytes, rate: int = RATE, ms: int = 20) -> list[InputAudioRawFrame]:
    """``pcm`` cut into ``ms`` input frames, as an input transport pushes them."""
    size = rate * ms // 1000 * 2
    return [InputAudioRawFrame(audio=pcm[i:i + size], sample_rate=rate, num_channels=1)
            for i in range(0, len(pcm), size)]


class Line:
    """The Twilio side the guard controls: a mark ledger and the agent speech on it."""

    def __init__(self) -> None:
        self.ledger = PlayoutLedger()
        self.speech = TwilioAgentSpeech(self.ledger)

    async def played(self, pcm: bytes, *, protected: bool = False) -> None:
        """Send ``pcm`` in 40 ms chunks, as the output does (feeding the guard's echo
        reference once the pipeline runs), and echo every mark (it all played)."""
        for start in range(0, len(pcm) - 639, 640):
            if self.speech.echo is not None:
                self.speech.echo.add(self.ledger.sent_ms, pcm[start:start + 640],
                                     after_silence=self.ledger.unheard_ms == 0)
            name = self.ledger.note_sent(40, protected=protected)
        if not protected:
            await self.ledger.on_mark(name)

    async def playing(self) -> None:
        """The agent has played a while and has more audio at Twilio."""
        await self.played(AGENT[: 2 * RATE * 2])
        self.ledger.note_sent(40)


def echo_of(pcm: bytes, gain: float) -> bytes:
    """What the caller's line sends back of ``pcm``: scaled, through mu-law."""
    return audioop.ulaw2lin(audioop.lin2ulaw(audioop.mul(pcm, 2, gain), 2), 2)


def is_silent(frame: InputAudioRawFrame) -> bool:
    return not np.frombuffer(frame.audio, dtype=np.int16).any()


async def test_a_short_noise_pauses_the_agent_then_lets_it_go_on(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*caller_frames(tone(440, 0.15)))
        await wait_for(lambda: line.ledger.paused)
        await p.send(*caller_frames(silence(0.4)))
        await wait_for(lambda: not line.ledger.paused)
    assert guard.pauses == 1
    assert len(p.down(InputAudioRawFrame)) == len(caller_frames(tone(440, 0.15) + silence(0.4)))


async def test_sound_that_goes_on_without_an_interruption_is_let_go(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech, max_pause_ms=400)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*caller_frames(tone(300, 1.0)))  # music on hold, a fan: not speech
        await wait_for(lambda: guard.pauses == 1 and not line.ledger.paused)
    assert guard.pauses == 1  # and no second pause while the same sound goes on


async def test_after_an_interruption_the_guard_waits_for_quiet(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*caller_frames(tone(440, 0.1)))
        await wait_for(lambda: line.ledger.paused)
        await p.send(InterruptionFrame())
        await line.ledger.clear()  # what the output does with the interruption
        await p.send(*caller_frames(tone(440, 0.3)))  # the caller goes on talking
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 20)
    assert guard.pauses == 1 and not line.ledger.paused


async def test_speech_over_the_agent_interrupts_it_once_it_has_lasted(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech, min_speech_s=0.25)
    speech = synthesize_speech("Wait, stop please, I have a question.")
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*caller_frames(speech[: RATE * 2 // 10]))  # 100 ms: not yet
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 5)
        assert line.ledger.paused and not p.down(InterruptionFrame)
        await p.send(*caller_frames(speech[RATE * 2 // 10: RATE * 2 * 4 // 10]))
        await p.wait_for(lambda: p.down(InterruptionFrame) and p.up(InterruptionFrame))
    assert guard.interruptions == 1 and guard.pauses == 1


async def test_one_window_scored_low_mid_word_does_not_start_the_count_again(
        pipeline: Any) -> None:
    # With the stream's 32 ms windows falling so, Silero scores one window of this line
    # ~0.6 about 0.3 s in; counted from zero again there, the cut came 0.3 s late.
    line = Line()
    guard = BargeInGuard(line.speech, min_speech_s=0.25)
    speech = echo_of(synthesize_speech(INTERRUPTION), 1.0)  # through mu-law, as heard
    sent = caller_frames(silence(0.48) + speech, ms=40)
    onset = next(i for i, f in enumerate(sent) if not is_silent(f))
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*sent[: onset + 8])  # 320 ms of the caller's sound
        await p.wait_for(lambda: p.down(InterruptionFrame))
    assert guard.interruptions == 1


async def test_speech_while_the_agent_is_silent_is_left_to_the_vad(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    speech = synthesize_speech("Wait, stop please, I have a question.")
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(speech))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(caller_frames(speech)))
    assert guard.interruptions == 0 and not p.down(InterruptionFrame)


async def test_the_disclosure_is_never_paused(pipeline: Any) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.played(AGENT[:RATE * 2], protected=True)
        await p.send(*caller_frames(tone(440, 0.3)))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 15)
    assert not line.ledger.paused and guard.pauses == 0


@pytest.mark.parametrize("frame_ms", [20, 40])  # Twilio's messages; Patter's transport
async def test_the_agents_own_echo_is_muted_and_does_not_pause_it(
        pipeline: Any, frame_ms: int) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    played = AGENT[: 2 * RATE * 2]
    echo = echo_of(played[-RATE * 2 * 5 // 10 - 4000: -4000], 0.3)  # 0.5 s, 250 ms late
    sent = caller_frames(echo, ms=frame_ms)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*sent)
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(sent))
    frames = p.down(InputAudioRawFrame)
    assert guard.pauses == 0 and not line.ledger.paused
    assert guard.echo_frames >= len(frames) // 2
    assert all(is_silent(f) for f in frames[-200 // frame_ms:])


@pytest.mark.parametrize("frame_ms", [20, 40])
async def test_the_caller_talking_over_the_echo_is_heard(pipeline: Any, frame_ms: int) -> None:
    line = Line()
    guard = BargeInGuard(line.speech)
    played = AGENT[: 2 * RATE * 2]
    echo = echo_of(played[-RATE * 2 * 5 // 10 - 4000: -4000], 0.3)
    speech = synthesize_speech("Wait, stop please.")[: len(echo)]
    both = audioop.add(echo[: len(speech)], speech, 2)
    sent = caller_frames(both, ms=frame_ms)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await line.playing()
        await p.send(*sent)
        await wait_for(lambda: line.ledger.paused)
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(sent))
    loud = [f for f in p.down(InputAudioRawFrame) if not is_silent(f)]
    assert guard.pauses == 1 and len(loud) >= len(sent) // 2


@pytest.mark.parametrize("rate", [8000, 16000])
async def test_alone_in_a_plain_pipeline_speech_over_the_bot_interrupts_it(
        pipeline: Any, rate: int) -> None:
    guard = BargeInGuard()  # no transport: the bot's speech is followed from frames
    speech = synthesize_speech("Wait, stop please, I have a question.", sample_rate_hz=rate)
    async with pipeline([guard], audio_in_rate=rate) as p:
        await p.send(*caller_frames(speech[: rate * 2 * 6 // 10], rate))  # bot silent
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 30)
        assert not p.down(InterruptionFrame)
        await p.send(BotStartedSpeakingFrame(), *caller_frames(silence(0.3, sample_rate_hz=rate),
                                                               rate))
        await p.send(*caller_frames(speech, rate))
        await p.wait_for(lambda: p.down(InterruptionFrame) and p.up(InterruptionFrame))
    assert guard.interruptions == 1


async def test_a_rate_silero_cannot_score_is_a_clear_error(pipeline: Any) -> None:
    guard = BargeInGuard()
    speech = synthesize_speech("Wait, stop please.", sample_rate_hz=44100)
    async with pipeline([guard], audio_in_rate=44100) as p:
        await p.wait_for(lambda: p.up(ErrorFrame))
        await p.send(BotStartedSpeakingFrame(), *caller_frames(speech, 44100))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(caller_frames(speech, 44100)))
    error = p.up(ErrorFrame)[0].exception
    assert isinstance(error, PatterConfigError)
    assert "8000 or 16000 Hz" in str(error) and "44100" in str(error)
    assert guard.interruptions == 0 and not p.down(InterruptionFrame)


async def test_how_long_speech_must_last_to_interrupt_is_set_per_agent(
        world: LoopbackWorld) -> None:
    phone = world.patter()
    assert build_kit(phone.agent("A bot."), phone.keys).vad.params.start_secs == 0.25
    patient = phone.agent("A patient bot.", min_barge_in_s=0.6)
    assert build_kit(patient, phone.keys).vad.params.start_secs == 0.6
    with pytest.raises(PatterConfigError, match="min_barge_in_s"):
        phone.agent("A bot.", min_barge_in_s=5)
