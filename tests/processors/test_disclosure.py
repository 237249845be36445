"""AIDisclosure: plays first and uninterruptible; caller input is held meanwhile, then replayed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter._pipecat import (
    InputAudioRawFrame,
    InputDTMFFrame,
    KeypadEntry,
    TTSAudioRawFrame,
    TTSSpeakFrame,
)
from patter.errors import PatterConfigError
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.testing.audio import silence, synthesize_speech, tone

RATE = 8000
DISCLOSURE = synthesize_speech("This call is with an AI assistant.")


def caller_frames(pcm: bytes, frame_bytes: int = 320) -> list[InputAudioRawFrame]:
    """``pcm`` cut into 20 ms input frames, as the Twilio input transport pushes them."""
    return [InputAudioRawFrame(audio=pcm[i:i + frame_bytes], sample_rate=RATE, num_channels=1)
            for i in range(0, len(pcm), frame_bytes)]


def test_disclosure_audio_cannot_be_empty() -> None:
    with pytest.raises(ValueError, match="empty"):
        AIDisclosure(b"")


def test_held_input_cannot_be_released_slower_than_real_time() -> None:
    with pytest.raises(ValueError, match="release_speedup"):
        AIDisclosure(DISCLOSURE, release_speedup=0.5)


async def test_the_player_plays_the_disclosure_first_uninterruptible_then_a_checkpoint(
        pipeline: Any) -> None:
    disclosure = AIDisclosure(DISCLOSURE)
    async with pipeline([disclosure.player()], audio_out_rate=RATE) as p:
        await p.wait_for(lambda: p.down(PlayoutCheckpointFrame))
        await p.send(TTSSpeakFrame("first message"))
        await p.wait_for(lambda: p.down(TTSSpeakFrame))

    audio = p.down(TTSAudioRawFrame)
    assert [a.audio for a in audio] == [DISCLOSURE]
    assert audio[0].sample_rate == RATE and audio[0].interruptible is False
    order = [type(f).__name__ for f in p.downstream.frames]
    assert order.index("TTSAudioRawFrame") < order.index("PlayoutCheckpointFrame")
    assert order.index("PlayoutCheckpointFrame") < order.index("TTSSpeakFrame")
    assert p.down(PlayoutCheckpointFrame) == [disclosure.checkpoint]


async def test_a_probe_after_the_output_marks_the_disclosure_finished(pipeline: Any) -> None:
    disclosure = AIDisclosure(DISCLOSURE)
    async with pipeline([disclosure.player(), PlayoutCheckpointProbe()], audio_out_rate=RATE):
        await asyncio.wait_for(disclosure.finished.wait(), 5)


async def test_the_player_waits_for_the_start_event(pipeline: Any) -> None:
    answered = asyncio.Event()
    disclosure = AIDisclosure(DISCLOSURE, start=answered)
    async with pipeline([disclosure.player()], audio_out_rate=RATE) as p:
        await asyncio.sleep(0.2)  # nothing plays before the start event
        assert p.down(TTSAudioRawFrame) == []
        answered.set()
        await p.wait_for(lambda: p.down(PlayoutCheckpointFrame))
    assert [a.audio for a in p.down(TTSAudioRawFrame)] == [DISCLOSURE]


async def test_the_gate_holds_caller_audio_and_keys_until_the_disclosure_was_heard(
        pipeline: Any) -> None:
    disclosure = AIDisclosure(DISCLOSURE)
    speech = caller_frames(synthesize_speech("I need help with my bill."))
    key = InputDTMFFrame(KeypadEntry.FIVE)
    after = caller_frames(tone(440, 0.2))
    async with pipeline([disclosure.gate()], audio_in_rate=RATE) as p:
        await p.send(*speech, key, TTSSpeakFrame("not held"))
        await p.wait_for(lambda: p.down(TTSSpeakFrame))
        await asyncio.sleep(0.2)  # caller input stays held while the disclosure plays
        assert p.down(InputAudioRawFrame) == [] and p.down(InputDTMFFrame) == []

        disclosure.finished.set()
        await p.send(*after)  # arrives while the backlog drains: must queue behind it
        await p.wait_for(lambda: len(p.down(InputAudioRawFrame)) == len(speech) + len(after))

    caller_input = (InputAudioRawFrame, InputDTMFFrame)
    released = [f for f in p.downstream.frames if isinstance(f, caller_input)]
    assert released == [*speech, key, *after]


async def test_the_gate_passes_caller_input_straight_through_once_drained(pipeline: Any) -> None:
    disclosure = AIDisclosure(DISCLOSURE)
    disclosure.finished.set()
    frames = caller_frames(silence(0.1))
    async with pipeline([disclosure.gate()], audio_in_rate=RATE) as p:
        await p.send(*frames, InputDTMFFrame(KeypadEntry.ONE))
        await p.wait_for(lambda: p.down(InputDTMFFrame))
    assert p.down(InputAudioRawFrame) == frames


def test_a_chain_without_the_gate_before_the_player_is_refused() -> None:
    disclosure = AIDisclosure(DISCLOSURE)
    probe = PlayoutCheckpointProbe()
    disclosure.require_in([disclosure.gate(), probe, disclosure.player()])
    for chain in ([disclosure.gate(), probe], [probe, disclosure.player()],
                  [disclosure.player(), disclosure.gate()]):
        with pytest.raises(PatterConfigError, match="cannot be switched off"):
            disclosure.require_in(chain)
