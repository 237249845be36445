"""Pipecat input transport reading a Twilio Media Stream: caller audio, keypad, marks, stop."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    BaseInputTransport,
    CancelFrame,
    EndFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    KeypadEntry,
    StartFrame,
    TransportParams,
    create_stream_resampler,
    ulaw_to_pcm,
)
from patter.transports.media_stream import MediaStreamSocket, StreamRejected
from patter.transports.playout import PlayoutLedger

logger = get_logger(__name__)

PHONE_RATE_HZ = 8000
StreamEndCallback = Callable[[str], Awaitable[None]]


class TwilioMediaInput(BaseInputTransport):
    """Turn Twilio's inbound messages into frames.

    Consumes (from the socket): ``media`` → ``InputAudioRawFrame`` (8 kHz PCM);
    ``dtmf`` → ``InputDTMFFrame`` (invalid digits are logged and dropped);
    ``mark`` → the playout ledger (what the caller has heard); ``stop`` or a closed
    socket → ``on_stream_end("stop" | "disconnect" | "protocol")``.
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
        try:
            while True:
                message = await self._socket.receive()
                if message is None:
                    break
                event = message.get("event")
                if event == "media":
                    await self._on_media(message)
                elif event == "dtmf":
                    await self._on_dtmf(message)
                elif event == "mark":
                    await self._ledger.on_mark(str((message.get("mark") or {}).get("name", "")))
                elif event == "stop":
                    reason = "stop"
                    break
        except StreamRejected as exc:
            logger.warning("media stream protocol error", extra={"reason": str(exc)})
            reason = "protocol"
        await self._ledger.close()
        await self._on_stream_end(reason)

    async def _on_media(self, message: dict[str, Any]) -> None:
        media = message.get("media") or {}
        if media.get("track", "inbound") not in ("inbound", "inbound_track"):
            return
        try:
            ulaw = base64.b64decode(media.get("payload", ""), validate=True)
        except (binascii.Error, ValueError):
            logger.warning("dropping media with a bad base64 payload")
            return
        if not ulaw:
            return
        pcm = await ulaw_to_pcm(ulaw, PHONE_RATE_HZ, PHONE_RATE_HZ, self._resampler)
        await self.push_audio_frame(
            InputAudioRawFrame(audio=pcm, sample_rate=PHONE_RATE_HZ, num_channels=1)
        )

    async def _on_dtmf(self, message: dict[str, Any]) -> None:
        digit = str((message.get("dtmf") or {}).get("digit", ""))
        try:
            entry = KeypadEntry(digit)
        except ValueError:
            logger.info("ignoring invalid dtmf digit", extra={"digit": digit[:4]})
            return
        await self.push_frame(InputDTMFFrame(entry))
