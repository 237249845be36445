"""Pipecat output transport writing a Twilio Media Stream, paced by Twilio's own marks."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    BaseOutputTransport,
    CancelFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TransportParams,
    TTSTextFrame,
    create_stream_resampler,
    pcm_to_ulaw,
)
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.playout import PlayoutLedger

logger = get_logger(__name__)

PHONE_RATE_HZ = 8000
InterruptedCallback = Callable[[str], Awaitable[None]]


class TwilioMediaOutput(BaseOutputTransport):
    """Send agent audio to Twilio, keeping its playout buffer shallow.

    Consumes: ``OutputAudioRawFrame`` → mu-law ``media`` followed by a ``mark`` per chunk,
    sent only while less than ``ledger.lead_ms`` of audio is unheard;
    ``InterruptionFrame`` → ``clear`` (unless the AI disclosure is still playing), and
    ``on_interrupted(heard_text_of_the_cut_sentence)``.
    Emits downstream: every non-system frame only once the caller has heard the audio
    before it (so the assistant context holds what was heard, not what was sent).
    """

    def __init__(
        self,
        socket: MediaStreamSocket,
        ledger: PlayoutLedger,
        params: TransportParams,
        *,
        on_interrupted: InterruptedCallback | None = None,
        end_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._socket = socket
        self._ledger = ledger
        self._on_interrupted = on_interrupted
        self._end_timeout_s = end_timeout_s
        self._resampler = create_stream_resampler()
        ledger.set_releaser(self._release)

    async def start(self, frame: StartFrame) -> None:
        """Start the media sender."""
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        """Finish sending, then wait until the caller has heard it all (bounded)."""
        await super().stop(frame)
        await self._ledger.wait_until_heard(self._end_timeout_s)
        await self._ledger.close()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop at once; held frames are released so nothing downstream waits."""
        await super().cancel(frame)
        await self._ledger.close()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Encode one chunk, wait for room in Twilio's buffer, send it and its mark."""
        if self._ledger.stream_closed:
            return False
        ulaw = await pcm_to_ulaw(frame.audio, frame.sample_rate, PHONE_RATE_HZ, self._resampler)
        if not ulaw:
            return True
        await self._ledger.wait_for_room()
        if not await self._socket.send_media(base64.b64encode(ulaw).decode("ascii")):
            return False
        mark = self._ledger.note_sent(len(ulaw) / 8, protected=not frame.interruptible)
        await self._socket.send_mark(mark)
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Clear Twilio's buffer on interruption before the base class resets its queues."""
        if isinstance(frame, InterruptionFrame):
            await self._interrupt()
        await super().process_frame(frame, direction)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        """Delay downstream data/control frames until the audio before them was heard."""
        if direction == FrameDirection.DOWNSTREAM and not isinstance(
            frame, (SystemFrame, EndFrame, CancelFrame)
        ):
            if isinstance(frame, TTSTextFrame):
                self._ledger.note_text(frame.text)
            await self._ledger.hold(frame)
            return
        await super().push_frame(frame, direction)

    async def _handle_frame(self, frame: Frame) -> None:
        # Word-level text frames carry presentation times on Pipecat's clock; route them
        # with the audio instead, so their place in the audio stream is exact.
        if isinstance(frame, TTSTextFrame) and frame.pts:
            frame.pts = None
        await super()._handle_frame(frame)

    async def _interrupt(self) -> None:
        if self._ledger.has_protected_audio_playing():
            await self._ledger.flush_uninterruptible()
            return
        if self._ledger.unheard_ms > 0:
            await self._socket.send_clear()
        heard_text = self._ledger.clear()
        await self._ledger.flush_uninterruptible()
        if self._on_interrupted is not None:
            await self._on_interrupted(heard_text)

    async def _release(self, frame: object) -> None:
        await super().push_frame(frame, FrameDirection.DOWNSTREAM)  # type: ignore[arg-type]
