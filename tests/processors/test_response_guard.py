"""ResponseGuard in a plain Pipecat pipeline: a turn with no answer by the deadline gets the
apology, the last allowed one the goodbye; a turn answered in time gets nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from patter._pipecat import (
    InterruptionFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    VADUserStoppedSpeakingFrame,
)
from patter.processors.checkpoint import PlayoutCheckpointProbe
from patter.processors.response_guard import Line, RecoveryLines, ResponseGuard

LINES = RecoveryLines(
    apology=Line("Sorry, one moment.", b"\x01\x00" * 800),
    didnt_catch=Line("Say it again?", b"\x02\x00" * 800),
    goodbye=Line("Goodbye.", b"\x03\x00" * 800),
)


def guard_with_log(**kwargs: Any) -> tuple[ResponseGuard, list[str], asyncio.Event]:
    said: list[str] = []
    gave_up = asyncio.Event()

    async def on_said(text: str) -> None:
        said.append(text)

    async def on_give_up() -> None:
        gave_up.set()

    guard = ResponseGuard(LINES, response_deadline_s=0.3, on_said=on_said,
                          on_give_up=on_give_up, **kwargs)
    return guard, said, gave_up


def audio_of(frames: list[TTSAudioRawFrame]) -> list[bytes]:
    return [f.audio for f in frames]


async def test_no_answer_by_the_deadline_gets_the_apology_then_the_goodbye(pipeline: Any) -> None:
    guard, said, gave_up = guard_with_log(max_failed_turns=2)
    async with pipeline([guard.watch(), guard.voice(), PlayoutCheckpointProbe()]) as p:
        for turns in (1, 2):
            await p.send(VADUserStoppedSpeakingFrame(stop_secs=0.0), LLMFullResponseStartFrame())
            await p.wait_for(lambda n=turns: len(said) == n, timeout=3)
        await asyncio.wait_for(gave_up.wait(), 3)
    assert said == ["Sorry, one moment.", "Goodbye."]
    assert audio_of(p.down(TTSAudioRawFrame)) == [LINES.apology.audio, LINES.goodbye.audio]
    assert all(not f.interruptible for f in p.down(TTSAudioRawFrame))
    assert len(p.pushed_by(guard.voice(), InterruptionFrame)) == 4  # both ways, per turn
    assert guard.gave_up
    assert guard.errors() == [{"step": "llm", "vendor": "unknown", "kind": "timeout",
                               "count": 2}]


async def test_an_answer_heard_in_time_resets_the_count_and_says_nothing(pipeline: Any) -> None:
    guard, said, _ = guard_with_log()
    answer = TTSAudioRawFrame(audio=b"\x05\x00" * 800, sample_rate=8000, num_channels=1)
    async with pipeline([guard.watch(), guard.voice()]) as p:
        await p.send(VADUserStoppedSpeakingFrame(stop_secs=0.0), LLMFullResponseStartFrame())
        await p.wait_for(lambda: said == ["Sorry, one moment."], timeout=3)
        assert guard.failed_in_a_row == 1
        await p.send(VADUserStoppedSpeakingFrame(stop_secs=0.0), LLMFullResponseStartFrame(),
                     answer)
        await asyncio.sleep(0.5)  # past the deadline
    assert said == ["Sorry, one moment."]
    assert guard.failed_in_a_row == 0
