"""Playout checkpoints: learn when the caller has heard everything the agent said before a point."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from patter._pipecat import DataFrame, Frame, FrameDirection, FrameProcessor


@dataclass
class PlayoutCheckpointFrame(DataFrame):
    """Push downstream after some agent audio; ``reached`` is set once that audio was heard.

    Created uninterruptible: a barge-in releases it at once (nothing before it will be
    heard any more), so whoever waits on it never waits forever.
    """

    label: str = ""
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.interruptible = False


class PlayoutCheckpointProbe(FrameProcessor):
    """Sets each checkpoint's ``reached`` event as it leaves the output transport.

    Consumes: ``PlayoutCheckpointFrame``. Passes through: every other frame.
    Place it right after the transport output: Patter's Twilio output releases frames
    only once the audio before them has been heard; a plain Pipecat output releases
    them once that audio has been written.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Resolve checkpoints; forward everything else."""
        await super().process_frame(frame, direction)
        if isinstance(frame, PlayoutCheckpointFrame):
            frame.reached.set()
            return
        await self.push_frame(frame, direction)
