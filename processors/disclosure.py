"""The AI disclosure: played first on every call, never interrupted, caller input held meanwhile."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InputAudioRawFrame,
    InputDTMFFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from patter.audio import level_dbfs
from patter.errors import PatterConfigError
from patter.processors.checkpoint import PlayoutCheckpointFrame

logger = get_logger(__name__)

MAX_HELD_FRAMES = 3000  # 60 s of 20 ms caller frames: a bound, far above any disclosure
RELEASE_SPEEDUP = 4.0
PACE_AFTER_SPEECH_S = 1.0  # > VAD stop time, so a segment ends before the next one starts
SPEECH_FLOOR_DBFS = -45.0


class AIDisclosure:
    """Two cooperating processors around one disclosure recording.

    ``player()`` (right before the transport output) plays the disclosure first, as
    uninterruptible audio, followed by a ``PlayoutCheckpointFrame`` (a
    ``PlayoutCheckpointProbe`` after the output resolves it once the caller has heard
    it). ``gate()`` (right after the transport input) holds caller audio and keypresses
    until then and releases them in order: nothing the caller said is lost.

    Held silence is released at once; audio that may be speech (and the second after it)
    faster than real time (``release_speedup``), not in a burst: VAD-segmented
    speech-to-text cuts its segments on VAD events that travel back upstream, and a
    burst would overtake them and cut the caller's words off.

    Args:
        audio: 16-bit mono PCM of the disclosure.
        sample_rate_hz: Rate of ``audio``.
        start: If given, the disclosure waits for this event (e.g. until an answering
            machine check says who answered); caller input stays held meanwhile.
        release_speedup: How many times faster than real time held audio is released.
        direct_mode: Run both processors in Pipecat's direct mode: each frame is handled in
            the task of the processor before, with no queue or task of their own (cheaper
            for the 50 audio frames a second the gate sees).
    """

    def __init__(
        self,
        audio: bytes,
        *,
        sample_rate_hz: int = 8000,
        start: asyncio.Event | None = None,
        release_speedup: float = RELEASE_SPEEDUP,
        direct_mode: bool = False,
    ) -> None:
        if not audio:
            raise ValueError("the AI disclosure audio is empty; render the disclosure text first")
        if release_speedup < 1:
            raise ValueError("release_speedup must be at least 1 (real time)")
        self.audio = audio
        self.sample_rate_hz = sample_rate_hz
        self.release_speedup = release_speedup
        self.checkpoint = PlayoutCheckpointFrame(label="disclosure")
        if start is None:
            start = asyncio.Event()
            start.set()
        self.start = start
        self._gate = _DisclosureGate(self, enable_direct_mode=direct_mode)
        self._player = _DisclosurePlayer(self, enable_direct_mode=direct_mode)

    @property
    def finished(self) -> asyncio.Event:
        """Set once the caller has heard the whole disclosure."""
        return self.checkpoint.reached

    def gate(self) -> FrameProcessor:
        """Holds caller input while the disclosure plays."""
        return self._gate

    def player(self) -> FrameProcessor:
        """Plays the disclosure before anything else the agent says."""
        return self._player

    def require_in(self, processors: Sequence[FrameProcessor]) -> None:
        """Raise ``PatterConfigError`` unless the gate comes before the player in ``processors``."""
        chain = list(processors)
        if self._gate in chain and self._player in chain:
            if chain.index(self._gate) < chain.index(self._player):
                return
        raise PatterConfigError(
            "the AI disclosure cannot be switched off: customize_pipeline removed, replaced or "
            "reordered the 'disclosure_gate'/'disclosure_player' stages. Insert your processors "
            "around them instead (pipeline.insert_before/insert_after)."
        )


class _DisclosureGate(FrameProcessor):
    """Consumes caller audio and keypresses until the disclosure was heard, then replays them.

    Passes through: every other frame at once.
    """

    def __init__(self, disclosure: AIDisclosure, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._disclosure = disclosure
        self._held: deque[Frame] = deque()
        self._releasing = True  # until the backlog has drained: keeps caller input in order
        self._release_task: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame) and self._release_task is None:
            self._release_task = self.create_task(self._release_when_heard())
        held_type = isinstance(frame, (InputAudioRawFrame, InputDTMFFrame))
        if held_type and direction == FrameDirection.DOWNSTREAM and self._releasing:
            if len(self._held) >= MAX_HELD_FRAMES:
                self._held.popleft()
                logger.warning("caller input held too long during the disclosure; oldest dropped")
            self._held.append(frame)
            return
        await self.push_frame(frame, direction)

    async def _release_when_heard(self) -> None:
        await self._disclosure.finished.wait()
        logger.debug("disclosure heard; releasing held caller input",
                     extra={"frames": len(self._held)})
        pace_left_s = 0.0  # audio still to pace since the last frame that may be speech
        while self._held:
            frame = self._held.popleft()
            await self.push_frame(frame)
            if not isinstance(frame, InputAudioRawFrame) or not frame.sample_rate:
                continue
            if _may_be_speech(frame.audio):
                pace_left_s = PACE_AFTER_SPEECH_S
            if pace_left_s > 0:
                duration_s = frame.num_frames / frame.sample_rate
                pace_left_s -= duration_s
                await asyncio.sleep(duration_s / self._disclosure.release_speedup)
        self._releasing = False

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._release_task is not None:
            await self.cancel_task(self._release_task)


class _DisclosurePlayer(FrameProcessor):
    def __init__(self, disclosure: AIDisclosure, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._disclosure = disclosure
        self._waiting: asyncio.Task[None] | None = None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            if self._disclosure.start.is_set():
                await self._play()
            else:
                self._waiting = self.create_task(self._play_when_started())

    async def _play_when_started(self) -> None:
        await self._disclosure.start.wait()
        await self._play()

    async def cleanup(self) -> None:
        await super().cleanup()
        if self._waiting is not None:
            await self.cancel_task(self._waiting)

    async def _play(self) -> None:
        audio = TTSAudioRawFrame(
            audio=self._disclosure.audio,
            sample_rate=self._disclosure.sample_rate_hz,
            num_channels=1,
        )
        audio.interruptible = False
        await self.push_frame(audio)
        await self.push_frame(self._disclosure.checkpoint)


def _may_be_speech(pcm: bytes) -> bool:
    """Whether 16-bit PCM is louder than a phone line's silence (``SPEECH_FLOOR_DBFS``)."""
    return level_dbfs(pcm) > SPEECH_FLOOR_DBFS
