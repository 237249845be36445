"""BargeInGuard: caller sound pauses the agent, a false alarm resumes it, echo is muted."""

from __future__ import annotations

import audioop
from typing import Any

import numpy as np
import pytest

from patter._pipecat import InputAudioRawFrame, InterruptionFrame
from patter._prewarm import build_kit
from patter.errors import PatterConfigError
from patter.processors.barge_in import BargeInGuard
from patter.testing.audio import silence, synthesize_speech, tone
from patter.testing.harness import LoopbackWorld, wait_for
from patter.transports.playout import PlayoutLedger

RATE = 8000
AGENT = synthesize_speech("Our restaurant opens at five in the evening every day of the week.")


def caller_frames(pcm: bytes) -> list[InputAudioRawFrame]:
    """``pcm`` cut into 20 ms input frames, as the Twilio input transport pushes them."""
    return [InputAudioRawFrame(audio=pcm[i:i + 320], sample_rate=RATE, num_channels=1)
            for i in range(0, len(pcm), 320)]


async def agent_played(ledger: PlayoutLedger, pcm: bytes, *, protected: bool = False) -> None:
    """Send ``pcm`` through the ledger in 40 ms chunks and echo every mark (it all played)."""
    for start in range(0, len(pcm) - 639, 640):
        name = ledger.note_sent(40, protected=protected, pcm=pcm[start:start + 640])
    if not protected:
        await ledger.on_mark(name)


async def agent_playing(ledger: PlayoutLedger) -> None:
    """The agent has played a while and has more audio at Twilio."""
    await agent_played(ledger, AGENT[: 2 * RATE * 2])
    ledger.note_sent(40)


def echo_of(pcm: bytes, gain: float) -> bytes:
    """What the caller's line sends back of ``pcm``: scaled, through mu-law."""
    return audioop.ulaw2lin(audioop.lin2ulaw(audioop.mul(pcm, 2, gain), 2), 2)


def is_silent(frame: InputAudioRawFrame) -> bool:
    return not np.frombuffer(frame.audio, dtype=np.int16).any()


async def test_a_short_noise_pauses_the_agent_then_lets_it_go_on(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(tone(440, 0.15)))
        await wait_for(lambda: ledger.paused)
        await p.send(*caller_frames(silence(0.4)))
        await wait_for(lambda: not ledger.paused)
    assert guard.pauses == 1
    assert len(p.down(InputAudioRawFrame)) == len(caller_frames(tone(440, 0.15) + silence(0.4)))


async def test_sound_that_goes_on_without_an_interruption_is_let_go(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger, max_pause_ms=400)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(tone(300, 1.0)))  # music on hold, a fan: not speech
        await wait_for(lambda: guard.pauses == 1 and not ledger.paused)
    assert guard.pauses == 1  # and no second pause while the same sound goes on


async def test_after_an_interruption_the_guard_waits_for_quiet(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(tone(440, 0.1)))
        await wait_for(lambda: ledger.paused)
        await p.send(InterruptionFrame())
        await ledger.clear()  # what the output does with the interruption
        await p.send(*caller_frames(tone(440, 0.3)))  # the caller goes on talking
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 20)
    assert guard.pauses == 1 and not ledger.paused


async def test_speech_over_the_agent_interrupts_it_once_it_has_lasted(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger, min_speech_s=0.25)
    speech = synthesize_speech("Wait, stop please, I have a question.")
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(speech[: RATE * 2 // 10]))  # 100 ms: not yet
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 5)
        assert ledger.paused and not p.down(InterruptionFrame)
        await p.send(*caller_frames(speech[RATE * 2 // 10: RATE * 2 * 4 // 10]))
        await p.wait_for(lambda: p.down(InterruptionFrame) and p.up(InterruptionFrame))
    assert guard.interruptions == 1 and guard.pauses == 1


async def test_speech_while_the_agent_is_silent_is_left_to_the_vad(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    guard = BargeInGuard(ledger)
    speech = synthesize_speech("Wait, stop please, I have a question.")
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(speech))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(caller_frames(speech)))
    assert guard.interruptions == 0 and not p.down(InterruptionFrame)


async def test_the_disclosure_is_never_paused(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_played(ledger, AGENT[:RATE * 2], protected=True)
    guard = BargeInGuard(ledger)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(tone(440, 0.3)))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == 15)
    assert not ledger.paused and guard.pauses == 0


async def test_the_agents_own_echo_is_muted_and_does_not_pause_it(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger)
    played = AGENT[: 2 * RATE * 2]
    echo = echo_of(played[-RATE * 2 * 5 // 10 - 4000: -4000], 0.3)  # 0.5 s, 250 ms late
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(echo))
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(echo) // 320)
    frames = p.down(InputAudioRawFrame)
    assert guard.pauses == 0 and not ledger.paused
    assert guard.echo_frames >= len(frames) // 2
    assert all(is_silent(f) for f in frames[-10:])


async def test_the_caller_talking_over_the_echo_is_heard(pipeline: Any) -> None:
    ledger = PlayoutLedger()
    await agent_playing(ledger)
    guard = BargeInGuard(ledger)
    played = AGENT[: 2 * RATE * 2]
    echo = echo_of(played[-RATE * 2 * 5 // 10 - 4000: -4000], 0.3)
    speech = synthesize_speech("Wait, stop please.")[: len(echo)]
    both = audioop.add(echo[: len(speech)], speech, 2)
    async with pipeline([guard], audio_in_rate=RATE) as p:
        await p.send(*caller_frames(both))
        await wait_for(lambda: ledger.paused)
        await wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(both) // 320)
    loud = [f for f in p.down(InputAudioRawFrame) if not is_silent(f)]
    assert guard.pauses == 1 and len(loud) >= len(both) // 320 // 2


async def test_how_long_speech_must_last_to_interrupt_is_set_per_agent(
        world: LoopbackWorld) -> None:
    phone = world.patter()
    assert build_kit(phone.agent("A bot."), phone.keys).vad.params.start_secs == 0.25
    patient = phone.agent("A patient bot.", min_barge_in_s=0.6)
    assert build_kit(patient, phone.keys).vad.params.start_secs == 0.6
    with pytest.raises(PatterConfigError, match="min_barge_in_s"):
        phone.agent("A bot.", min_barge_in_s=5)
