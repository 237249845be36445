"""Caller audio stops where nothing further down a call's chain listens to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from patter._pipecat import Frame, FrameDirection, FrameProcessor, InputAudioRawFrame


class CallerAudioEnd(FrameProcessor):
    """Drop caller audio going downstream: nothing after this point needs it.

    Consumes: ``InputAudioRawFrame`` going downstream.
    Passes through: every other frame, unchanged and in order.
    Runs in Pipecat's direct mode (no queue or task of its own). Pipecat passes every frame
    a processor does not handle on to the next one, so without it each 20 ms of caller audio
    would also travel through the LLM, the TTS, the output transport and the assistant
    aggregator, a queue and a task switch each.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(enable_direct_mode=True, **kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Forward every frame but downstream caller audio."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            return
        await self.push_frame(frame, direction)


def end_caller_audio(
    processors: Sequence[FrameProcessor],
    *,
    after: FrameProcessor | None,
    quiet_tail: Sequence[FrameProcessor] | None,
) -> list[FrameProcessor]:
    """``processors`` with a ``CallerAudioEnd`` just after ``after`` when what follows it is
    exactly ``quiet_tail`` (processors known not to use caller audio; None: none known);
    else unchanged, so a processor a user placed further down (a recorder, say) still gets
    the audio."""
    chain = list(processors)
    if after is None or quiet_tail is None or not only_followed_by(chain, after, quiet_tail):
        return chain
    index = chain.index(after) + 1
    return [*chain[:index], CallerAudioEnd(), *chain[index:]]


def only_followed_by(
    chain: Sequence[FrameProcessor], anchor: FrameProcessor, tail: Sequence[FrameProcessor]
) -> bool:
    """Whether ``anchor`` is in ``chain`` and exactly ``tail`` (the same objects) follows it."""
    if anchor not in chain:
        return False
    rest = chain[list(chain).index(anchor) + 1:]
    return len(rest) == len(tail) and all(a is b for a, b in zip(rest, tail, strict=True))
