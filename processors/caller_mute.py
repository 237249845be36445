"""Silence the caller for good: e.g. an answering machine's greeting must never reach the LLM."""

from __future__ import annotations

from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InputAudioRawFrame,
    InputDTMFFrame,
)

logger = get_logger(__name__)


class CallerInputMute(FrameProcessor):
    """Drop caller audio and keypresses once ``mute()`` has been called.

    Consumes (after ``mute()``): ``InputAudioRawFrame`` and ``InputDTMFFrame`` going
    downstream — nothing the far end sends reaches STT, VAD, the DTMF injector or the LLM.
    Passes through: every other frame, and all caller input until muted.
    Place it after the disclosure gate, so input the gate held and releases later is
    dropped too. Muting is one-way: it is meant for a call that will only be spoken to
    (a voicemail) and then hung up.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._muted = False

    def mute(self) -> None:
        """Drop every caller frame from now on (including frames released later by a gate)."""
        if not self._muted:
            logger.info("caller input muted")
        self._muted = True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Drop caller input while muted; forward everything else."""
        await super().process_frame(frame, direction)
        if (
            self._muted
            and direction == FrameDirection.DOWNSTREAM
            and isinstance(frame, (InputAudioRawFrame, InputDTMFFrame))
        ):
            return
        await self.push_frame(frame, direction)
