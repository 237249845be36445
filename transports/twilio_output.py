"""Pipecat output transport writing a Twilio Media Stream, paced by Twilio's own marks."""

from __future__ import annotations

import asyncio
import audioop
import base64
from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    AggregatedTextFrame,
    BaseOutputTransport,
    CancelFrame,
    EndFrame,
    Frame,
    FrameDirection,
    InterruptionFrame,
    LLMAssistantPushAggregationFrame,
    LLMFullResponseEndFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TransportParams,
    TTSAudioRawFrame,
    TTSTextFrame,
    create_stream_resampler,
    obj_id,
    pcm_to_ulaw,
)
from patter.audio import PHONE_RATE_HZ
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_speech import TwilioAgentSpeech

logger = get_logger(__name__)

InterruptedCallback = Callable[[str], Awaitable[None]]


class TwilioMediaOutput(BaseOutputTransport):
    """Send agent audio to Twilio, keeping its playout buffer shallow.

    Consumes: ``OutputAudioRawFrame`` → mu-law ``media`` followed by a ``mark`` per chunk,
    sent only while less than ``ledger.lead_ms`` of audio is unheard and no barge-in
    pause is in force (``speech.pause()``); ``InterruptionFrame`` → ``clear`` at once
    (unless the AI disclosure is still playing), the audio and text not yet heard are
    dropped, and ``on_interrupted(heard_text_of_the_cut_speech)`` is called.
    Emits downstream: every non-system frame only once the caller has heard the audio
    before it (so the assistant context holds what was heard, not what was sent), pushed
    from this processor's own tasks when the input transport records the mark that says
    so. The agent audio itself goes on too (for a recorder placed after the output) unless
    ``forward_audio`` is False: then it stops here once sent. All frames travel in order
    with the audio: word timestamps (``pts``) are not used for timing, the marks are.
    ``speech`` is the agent's voice for the barge-in guard.
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
        self._stale_below_id = 0  # interruptible audio created before the last cut
        self.speech = TwilioAgentSpeech(ledger)
        """The agent's voice on this stream, for the barge-in guard."""
        self._release_lock = asyncio.Lock()  # held frames leave in order, one task at a time
        self._release_task: asyncio.Task[None] | None = None
        self.forward_audio = True
        """Push the agent audio downstream once heard; False when nothing after the output
        uses it (it would be held, released and passed on, 25 chunks a second, for nothing)."""

    async def start(self, frame: StartFrame) -> None:
        """Start the media sender and the release of held frames."""
        await super().start(frame)
        if self._release_task is None:
            self._release_task = self.create_task(self._release_heard_frames())
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        """Finish sending, then wait until the caller has heard it all (bounded)."""
        await super().stop(frame)
        await self._ledger.wait_until_heard(self._end_timeout_s)
        await self._close()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop at once; held frames are released so nothing downstream waits."""
        await super().cancel(frame)
        await self._close()

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        """Encode one chunk, wait for room in Twilio's buffer, send it and its mark.

        Interruptible audio that existed before a cut is never sent after it, even if
        it was already on its way (waiting for room, or taken from the queue).
        """
        if self._ledger.stream_closed:
            return False
        ulaw = await pcm_to_ulaw(frame.audio, frame.sample_rate, PHONE_RATE_HZ, self._resampler)
        if not ulaw:
            return True
        await self._ledger.wait_for_room(interruptible=frame.interruptible)
        if self._stale(frame):
            return False
        if not await self._socket.send_media(base64.b64encode(ulaw).decode("ascii")):
            return False
        if self.speech.echo is not None:
            self.speech.echo.add(self._ledger.sent_ms, audioop.ulaw2lin(ulaw, 2),
                                 after_silence=self._ledger.unheard_ms == 0)
        mark = self._ledger.note_sent(
            len(ulaw) / 8,
            protected=not frame.interruptible,
            carries_text=not self._stale(frame),
        )
        await self._socket.send_mark(mark)
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note text and audio as they arrive; clear Twilio's buffer on interruption
        before the base class drops what is queued."""
        if direction == FrameDirection.DOWNSTREAM:
            self._note_arrival(frame)
        if isinstance(frame, InterruptionFrame):
            await self._interrupt()
        await super().process_frame(frame, direction)

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        """Delay downstream data/control frames until the audio before them was heard."""
        if direction == FrameDirection.DOWNSTREAM and not isinstance(
            frame, (SystemFrame, EndFrame, CancelFrame)
        ):
            if isinstance(frame, OutputAudioRawFrame) and not self.forward_audio:
                return
            if isinstance(frame, TTSTextFrame) and frame.append_to_context:
                self._ledger.text.note_text_sent(frame.text, self._ledger.sent_ms)
            elif isinstance(frame, (LLMFullResponseEndFrame, LLMAssistantPushAggregationFrame)):
                self._ledger.text.note_turn_end(self._ledger.sent_ms)
            async with self._release_lock:
                if self._ledger.hold(frame):
                    return
                await super().push_frame(frame, direction)
            return
        await super().push_frame(frame, direction)

    async def _handle_frame(self, frame: Frame) -> None:
        # Word timestamps put presentation times on Pipecat's clock; here every frame
        # travels with the audio instead, so its place in the stream (and the mark that
        # releases it) is exact and frames stay in order.
        frame.pts = None
        await super()._handle_frame(frame)

    def _note_arrival(self, frame: Frame) -> None:
        text = self._ledger.text
        if isinstance(frame, TTSAudioRawFrame) and frame.interruptible:
            text.note_audio_arrived(len(frame.audio) / 2 / frame.sample_rate * 1000)
        elif isinstance(frame, TTSTextFrame) and frame.append_to_context:
            # Text kept out of the context (e.g. a sentence whose synthesis failed) was
            # not spoken: it is never counted as heard.
            text.note_text_arrived(frame.text, word_level=bool(frame.pts))
        elif isinstance(frame, AggregatedTextFrame) and frame.will_be_spoken:
            text.note_announced(frame.text)

    def _stale(self, frame: OutputAudioRawFrame) -> bool:
        """Whether ``frame`` is interruptible audio overtaken by a cut (frame ids only grow)."""
        return frame.interruptible and frame.id < self._stale_below_id

    async def _interrupt(self) -> None:
        self._stale_below_id = obj_id()
        if self._ledger.has_protected_audio_playing():
            # No clear: the disclosure, and whatever was sent after it, plays on and will
            # be heard; only what the base class drops from its queue is forgotten.
            self._ledger.text.forget_unsent()
            await self._ledger.resume()
            return
        cut = await self._ledger.clear()
        if cut.cleared:
            await self._socket.send_clear()
            logger.debug(
                "twilio buffer cleared",
                extra={"heard_ms": round(cut.heard_ms),
                       "dropped_ms": round(cut.sent_ms - cut.heard_ms)},
            )
        await self._push_heard()  # what must survive a cut (checkpoints)
        if self._on_interrupted is not None:
            await self._on_interrupted(cut.heard_text)

    async def _release_heard_frames(self) -> None:
        """Push held frames once heard: the input transport only records the marks."""
        while True:
            await self._ledger.frames_heard.wait()
            await self._push_heard()

    async def _push_heard(self) -> None:
        async with self._release_lock:
            for frame in self._ledger.take_heard():
                await super().push_frame(frame, FrameDirection.DOWNSTREAM)  # type: ignore[arg-type]

    async def _close(self) -> None:
        """The stream is done: every held frame goes now, then the release task stops."""
        await self._ledger.close()
        await self._push_heard()
        if self._release_task is not None:
            await self.cancel_task(self._release_task)
            self._release_task = None
