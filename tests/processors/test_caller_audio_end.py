"""CallerAudioEnd: caller audio goes no further than the last stage that listens to it."""

from __future__ import annotations

from typing import Any

from patter._pipecat import (
    FrameProcessor,
    InputAudioRawFrame,
    InputDTMFFrame,
    KeypadEntry,
    TTSSpeakFrame,
)
from patter.processors._caller_audio_end import CallerAudioEnd, end_caller_audio


async def test_caller_audio_stops_and_every_other_frame_passes_in_order(pipeline: Any) -> None:
    audio = InputAudioRawFrame(audio=bytes(320), sample_rate=8000, num_channels=1)
    async with pipeline([CallerAudioEnd()]) as p:
        await p.send(audio, TTSSpeakFrame("hello"), InputDTMFFrame(KeypadEntry.ONE))
        await p.wait_for(lambda: p.down(InputDTMFFrame))

    assert p.down(InputAudioRawFrame) == []
    assert [f.text for f in p.down(TTSSpeakFrame)] == ["hello"]


def test_the_end_goes_after_the_anchor_when_only_the_quiet_stages_follow() -> None:
    first, anchor, llm, tts = (FrameProcessor() for _ in range(4))

    chain = end_caller_audio([first, anchor, llm, tts], after=anchor, quiet_tail=[llm, tts])

    assert chain[:2] == [first, anchor] and chain[3:] == [llm, tts]
    assert isinstance(chain[2], CallerAudioEnd)


def test_a_stage_a_user_added_after_the_anchor_still_gets_caller_audio() -> None:
    anchor, llm, tts, recorder = (FrameProcessor() for _ in range(4))

    for chain in ([anchor, llm, tts, recorder], [anchor, llm, recorder], [llm, tts]):
        assert end_caller_audio(chain, after=anchor, quiet_tail=[llm, tts]) == chain


def test_no_end_when_no_stage_is_known_to_ignore_caller_audio() -> None:
    anchor, llm = FrameProcessor(), FrameProcessor()  # e.g. a speech-to-speech LLM of the user's

    assert end_caller_audio([anchor, llm], after=anchor, quiet_tail=None) == [anchor, llm]
