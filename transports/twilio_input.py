"""Pipecat input transport reading a Twilio Media Stream: caller audio, keypad, marks, stop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    BaseInputTransport,
    CancelFrame,
    EndFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    StartFrame,
    TransportParams,
    create_stream_resampler,
    ulaw_to_pcm,
)
from patter.audio import PHONE_RATE_HZ
from patter.transports._stream_messages import (
    CallerAudio,
    KeyPressed,
    MalformedMessage,
    MarkEchoed,
    SkippedMessages,
    parse_event,
)
from patter.transports.media_stream import MediaStreamSocket, StreamRejected
from patter.transports.playout import PlayoutLedger

logger = get_logger(__name__)

StreamEndCallback = Callable[[str], Awaitable[None]]

CALLER_FRAME_MS = 40
"""Caller audio goes down the pipeline in frames of this length, two of Twilio's 20 ms
messages each: every processor after the transport (barge-in guard, STT, the VAD in the
user aggregator) then handles half as many frames. Silero scores 32 ms windows, so a
window is complete at the same 40 ms boundary either way."""


class TwilioMediaInput(BaseInputTransport):
    """Turn Twilio's inbound messages into frames.

    Consumes (from the socket): ``media`` → ``InputAudioRawFrame`` (8 kHz PCM, in
    ``CALLER_FRAME_MS`` frames); ``dtmf`` → ``InputDTMFFrame`` (the caller audio before
    it is pushed first, however short); ``mark`` → recorded in the playout ledger (what
    the caller has heard; the output pushes the frames that were waiting for it, from its
    own task); ``stop`` or a closed socket → ``on_stream_end("stop" | "disconnect")``.
    Malformed messages are logged (rate-limited) and skipped (``_stream_messages``); an
    oversize one → ``on_stream_end("protocol")``; any unexpected failure of the receive
    loop is logged with its traceback → ``on_stream_end("error")``, so the call ends
    cleanly instead of going deaf.
    """

    def __init__(
        self,
        socket: MediaStreamSocket,
        ledger: PlayoutLedger,
        params: TransportParams,
        *,
        on_stream_end: StreamEndCallback,
        **kwargs: Any,
    ) -> None:
        super().__init__(params, **kwargs)
        self._socket = socket
        self._ledger = ledger
        self._on_stream_end = on_stream_end
        self._resampler = create_stream_resampler()
        self._receive_task: Any = None
        self._caller_ulaw = bytearray()  # caller audio not yet pushed (under one frame)
        self._caller_frame_bytes = PHONE_RATE_HZ * CALLER_FRAME_MS // 1000

    async def start(self, frame: StartFrame) -> None:
        """Start reading the socket once the pipeline has started."""
        await super().start(frame)
        if self._receive_task is None:
            self._receive_task = self.create_task(self._receive())
        await self.set_transport_ready(frame)

    async def stop(self, frame: EndFrame) -> None:
        """Stop reading (the socket itself is closed by Twilio or the session)."""
        await super().stop(frame)
        await self._stop_receiving()

    async def cancel(self, frame: CancelFrame) -> None:
        """Stop reading at once."""
        await super().cancel(frame)
        await self._stop_receiving()

    async def _stop_receiving(self) -> None:
        if self._receive_task is not None:
            await self.cancel_task(self._receive_task)
            self._receive_task = None

    async def _receive(self) -> None:
        reason = "disconnect"
        skipped = SkippedMessages()
        try:
            while True:
                try:
                    message = await self._socket.receive()
                    if message is None:
                        break
                    event = parse_event(message)
                except MalformedMessage as exc:
                    skipped.note(str(exc))
                    continue
                if isinstance(event, CallerAudio):
                    await self._on_audio(event.ulaw)
                elif isinstance(event, KeyPressed):
                    await self._push_caller_audio()
                    await self.push_frame(InputDTMFFrame(event.key))
                elif isinstance(event, MarkEchoed):
                    await self._ledger.on_mark(event.name)
                else:  # StreamStopped
                    reason = "stop"
                    break
        except StreamRejected as exc:
            logger.warning("media stream protocol error", extra={"reason": str(exc)})
            reason = "protocol"
        except Exception:  # never go deaf silently: end the call as if the peer had gone
            logger.exception("media stream receive loop failed")
            reason = "error"
        finally:
            skipped.close()
        try:
            await self._push_caller_audio()  # an odd last 20 ms
            await self._ledger.close()
        finally:
            await self._on_stream_end(reason)

    async def _on_audio(self, ulaw: bytes) -> None:
        self._caller_ulaw += ulaw
        if len(self._caller_ulaw) >= self._caller_frame_bytes:
            await self._push_caller_audio()

    async def _push_caller_audio(self) -> None:
        if not self._caller_ulaw:
            return
        ulaw, self._caller_ulaw = bytes(self._caller_ulaw), bytearray()
        pcm = await ulaw_to_pcm(ulaw, PHONE_RATE_HZ, PHONE_RATE_HZ, self._resampler)
        await self.push_audio_frame(
            InputAudioRawFrame(audio=pcm, sample_rate=PHONE_RATE_HZ, num_channels=1)
        )

    async def push_audio_frame(self, frame: InputAudioRawFrame) -> None:
        """Push caller audio on from the receive task, in the socket's order.

        Pipecat's input transport queues each frame for a task of its own, which waits for
        it with a timeout: a queue hop, a timer and a task switch per frame, 25 times a
        second all through a call, for a hand-over this transport does not need (the socket
        is already read by a task of its own). Pushed here, a key press also stays after the
        caller audio that came before it. With an ``audio_in_filter``, Pipecat's path.
        """
        params = self._params
        if params.audio_in_filter is not None:
            await super().push_audio_frame(frame)
        elif params.audio_in_enabled and params.audio_in_passthrough and not self._paused:
            await self.push_frame(frame)
