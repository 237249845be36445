"""Deepgram live transcription that survives its socket dropping, without losing a word.

Pipecat 1.14's ``DeepgramSTTService`` does reconnect after its socket dies, but:

- it waits at least 4 s first (``exponential_backoff_time``'s minimum), and the caller's
  audio in that gap is sent to no socket: it is lost;
- the audio of the utterance in progress went to the dead socket, whose results never
  came: the start of the caller's sentence is lost too;
- every drop is pushed as an ``ErrorFrame``, so a fallback list would leave a vendor that
  was about to recover (``patter._failover`` retires a vendor on any error);
- connecting blocks the call's start until it succeeds or gives up.

``ReconnectingDeepgramSTTService`` keeps the caller's audio that Deepgram has not confirmed
yet (no final result covers it) — bounded to ``REPLAY_LIMIT_S`` — and sends it again, then
the audio of the gap, on the new socket, so the sentence is transcribed whole. It reconnects
at once, then with a short backoff; a drop is logged, not reported, and only giving up (or a
4xx refusal) is an error, which leaves the service unusable for a fallback to take over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from deepgram.core import ApiError
from deepgram.core.events import EventType
from deepgram.listen.v1.types import ListenV1Results
from pipecat.services.deepgram.stt import DeepgramSTTService

from patter._log import get_logger
from patter._pipecat import Frame, FrameDirection, VADUserStoppedSpeakingFrame

logger = get_logger(__name__)

REPLAY_LIMIT_S = 15.0
"""Most caller audio kept for a replay (the oldest goes first): a long sentence."""
RECONNECT_BACKOFF_S = (0.0, 0.25, 0.5, 1.0)
"""Wait before each reconnect attempt in a row."""
MAX_QUICK_FAILURES = len(RECONNECT_BACKOFF_S) + 1
"""Attempts in a row that fail, or stay up less than ``STABLE_S``, before giving up (in
about 2 s, during which the caller's audio is held)."""
STABLE_S = 5.0
_BYTES_PER_SAMPLE = 2  # linear16, mono


class ReconnectingDeepgramSTTService(DeepgramSTTService):
    """``DeepgramSTTService`` that replays unconfirmed caller audio after a reconnect.

    Args:
        replay_limit_s: How much unconfirmed caller audio to keep for a replay.
        **kwargs: ``DeepgramSTTService``'s arguments.
    """

    def __init__(self, *, replay_limit_s: float = REPLAY_LIMIT_S, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._replay_limit_s = replay_limit_s
        self._unconfirmed = bytearray()  # caller audio no final result has covered yet
        self._sent = 0  # bytes of it already sent on the current socket
        self._start_s = 0.0  # where it starts, in the current socket's audio time
        self._socket: Any = None  # the socket _sent and _start_s refer to
        self._failures = 0
        self._closing = False  # we are closing the stream: its end is no drop

    @property
    def held_audio(self) -> bytes:
        """The caller audio held for a replay (not confirmed by a final result yet)."""
        return bytes(self._unconfirmed)

    @property
    def unconfirmed_s(self) -> float:
        """Seconds of caller audio held for a replay."""
        return len(self._unconfirmed) / self._bytes_per_s

    @property
    def _bytes_per_s(self) -> int:
        return (self.sample_rate or 8000) * _BYTES_PER_SAMPLE

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        """Hold ``audio`` until Deepgram confirms it, and send what the socket lacks."""
        self._unconfirmed += audio
        excess = len(self._unconfirmed) - int(self._replay_limit_s * self._bytes_per_s)
        if excess > 0:
            self._drop_front(excess - excess % _BYTES_PER_SAMPLE)
        await self._send_held()
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Send any held audio before the end-of-speech ``Finalize`` (Pipecat)."""
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            await self._send_held()
        await super().process_frame(frame, direction)

    async def _send_held(self) -> None:
        connection = self._connection
        if connection is None:
            return
        if connection is not self._socket:  # a new socket: everything held goes again
            self._socket, self._sent, self._start_s = connection, 0, 0.0
            if self._failures:
                logger.info("deepgram reconnected; replaying caller audio",
                            extra={"replay_s": round(self.unconfirmed_s, 2)})
        if self._sent >= len(self._unconfirmed):
            return
        try:
            await connection.send_media(bytes(self._unconfirmed[self._sent:]))
        except Exception as exc:
            logger.warning("deepgram send failed; holding the audio for the next socket",
                           extra={"error": type(exc).__name__})
            self._connection = None
            return
        self._sent = len(self._unconfirmed)

    def _drop_front(self, count: int) -> None:
        del self._unconfirmed[:count]
        self._start_s += count / self._bytes_per_s
        self._sent = max(0, self._sent - count)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, ListenV1Results) and message.is_final:
            # Deepgram has transcribed the audio up to the end of this result for good.
            end_s = float(message.start or 0.0) + float(message.duration or 0.0)
            confirmed = int((end_s - self._start_s) * self._bytes_per_s)
            confirmed = min(self._sent, confirmed - confirmed % _BYTES_PER_SAMPLE)
            if confirmed > 0:
                self._drop_front(confirmed)
        await super()._on_message(message)

    async def _on_socket_error(self, error: Any) -> None:
        # Pipecat pushes an ErrorFrame here; the receive loop ends and reconnects anyway.
        logger.warning("deepgram socket error; reconnecting", extra={"error": str(error)[:200]})
        await self.stop_all_metrics()

    async def _connect(self) -> None:
        self._closing = False
        await super()._connect()

    async def _disconnect(self) -> None:
        self._closing = True
        await super()._disconnect()

    async def _connection_handler(self) -> None:
        """Connect, listen until the socket ends, reconnect (at once, then backing off);
        give up — unusable, for a fallback to take over — after ``MAX_QUICK_FAILURES``
        short-lived attempts in a row or a 4xx refusal. The first attempt settles
        ``_connect()`` whatever its outcome, so a vendor that is down does not hold the
        call's start (its audio is held meanwhile)."""
        try:
            while True:
                connected_at: float | None = None
                keepalive: asyncio.Task[None] | None = None
                reason = "closed"
                try:
                    connect = self._client.listen.v1.connect(**self._build_connect_kwargs())
                    async with connect as connection:
                        connected_at = time.monotonic()
                        self._connection = connection
                        self._connection_settled.set()
                        connection.on(EventType.MESSAGE, self._on_message)
                        connection.on(EventType.ERROR, self._on_socket_error)
                        keepalive = self.create_task(self._keepalive_handler(), "keepalive")
                        await connection.start_listening()
                except ApiError as exc:
                    if exc.status_code is not None and 400 <= exc.status_code < 500:
                        await self.push_error(
                            error_msg=f"Deepgram refused the connection (status {exc.status_code})",
                            exception=exc, force_treat_as_permanent=True,
                        )
                        return
                    reason = f"status {exc.status_code}"
                except Exception as exc:
                    reason = type(exc).__name__
                finally:
                    self._connection = None
                    if keepalive is not None:
                        await self.cancel_task(keepalive)
                self._connection_settled.set()
                if self._closing:
                    return
                up_s = time.monotonic() - connected_at if connected_at is not None else 0.0
                self._failures = 1 if up_s >= STABLE_S else self._failures + 1
                if self._failures >= MAX_QUICK_FAILURES:
                    await self.push_error(
                        error_msg=f"Deepgram connection failed {MAX_QUICK_FAILURES} times in a row",
                        force_treat_as_permanent=True,
                    )
                    return
                wait_s = RECONNECT_BACKOFF_S[self._failures - 1]
                logger.warning("deepgram socket lost; reconnecting", extra={
                    "reason": reason, "attempt": self._failures, "wait_s": wait_s,
                    "held_s": round(self.unconfirmed_s, 2)})
                await asyncio.sleep(wait_s)
        finally:
            self._connection_settled.set()
