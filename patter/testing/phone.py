"""A simulated phone: the Twilio end of a bidirectional Media Stream, with its playout buffer."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from patter.testing._lifecycle import AsyncStartClose
from patter.testing._twilio_state import new_sid
from patter.testing.audio import mulaw_to_pcm, synthesize_speech

from ._phone_microphone import Microphone
from ._phone_playout import BYTES_PER_S, MAX_LAG_S, PlayoutBuffer
from ._phone_timeline import PhoneEvent, Timeline

FRAME_S = 0.02


class SimulatedPhone(AsyncStartClose):
    """The Twilio end of a bidirectional ``<Connect><Stream>``: a caller plus Twilio's playout.

    ``start()`` opens the WebSocket and sends ``connected`` and ``start`` as Twilio does,
    then streams ``media`` every 20 ms in real time: the caller's queued speech
    (``say``/``say_text``), else mu-law silence. Outbound ``media`` from the server goes into
    a playout buffer that plays at 8000 bytes/s; a ``mark`` is echoed once the audio sent
    before it has played, and ``clear`` drops the buffer and echoes pending marks at once.

    Timeline kinds in ``events``: ``connected``, ``start_sent``, ``caller_audio_started``,
    ``caller_audio_ended``, ``dtmf_sent``, ``media_received``, ``mark_received``,
    ``clear_received``, ``message_received`` (other JSON), ``invalid_received``,
    ``playout_started``, ``playout_stopped``, ``mark_echoed``, ``stop_sent``, ``closed``.

    Usage::

        async with SimulatedPhone("ws://127.0.0.1:8000/media", custom_parameters={...}) as phone:
            phone.say_text("hello")
            await phone.wait_for_heard(1.0)
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        custom_parameters: Mapping[str, str] | None = None,
        account_sid: str | None = None,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        send_start: bool = True,
        open_timeout_s: float = 10.0,
    ) -> None:
        """Prepare a phone for ``url``; nothing is sent before ``start()``.

        ``send_start=False`` skips the ``start`` message (media still flows), to test
        servers against clients that break the protocol.
        """
        self.url = url
        self.headers = dict(headers or {})
        self.custom_parameters = dict(custom_parameters or {})
        self.account_sid = account_sid or new_sid("AC")
        self.call_sid = call_sid or new_sid("CA")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.send_start = send_start
        self.open_timeout_s = open_timeout_s
        self.timeline = Timeline()
        self.received: list[dict[str, Any]] = []
        """Every JSON message the server sent."""
        self.sent: list[dict[str, Any]] = []
        """Every JSON message the phone sent (``send_raw`` frames excepted)."""
        self.invalid_received: list[str | bytes] = []
        """Frames from the server that were binary or not valid JSON / media."""
        self.echoed_marks: list[str] = []
        """Names of marks echoed back to the server, in order."""
        self.closed_by_server = False
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._ws: ClientConnection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._send_lock = asyncio.Lock()
        self._sequence = 0
        self._frame_in_flight = False
        self._digits: deque[str] = deque()
        self._playout = PlayoutBuffer(
            echo=self._echo, on_event=self._event, on_change=self.timeline.changed
        )
        self.microphone = Microphone(self._playout, self._event)
        """The caller's microphone (``echo_gain``/``echo_delay_s``: the agent's voice
        leaking back into it)."""
        self._hanging_up = False
        self._stopped = False
        self._closed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the WebSocket, send ``connected`` and ``start``, and begin streaming media.

        Raises ``websockets`` errors (e.g. ``InvalidStatus`` if the server refuses the upgrade).
        """
        self._ws = await connect(
            self.url,
            additional_headers=self.headers,
            user_agent_header="Twilio.TmeWs/1.0",
            compression=None,
            proxy=None,
            open_timeout=self.open_timeout_s,
            max_size=None,
        )
        self._playout.last_voiced_end = time.monotonic()
        self._event("connected")
        await self._send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if self.send_start:
            media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            await self._send_event("start", {
                "streamSid": self.stream_sid,
                "accountSid": self.account_sid,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters,
                "mediaFormat": media_format,
            })
            self._event("start_sent")
        for loop in (self._receive_loop, self._stream_loop, self._playout.run):
            self._tasks.append(asyncio.create_task(loop()))

    async def hang_up(self) -> None:
        """Send ``stop`` and close the socket, as Twilio does when the call or stream ends."""
        if self._ws is None:
            return
        if self._hanging_up or self._closed.is_set():
            await self._closed.wait()
            return
        self._hanging_up = True
        try:
            await self._send_event(
                "stop", {"accountSid": self.account_sid, "callSid": self.call_sid}
            )
            self._event("stop_sent")
        except ConnectionClosed:
            pass
        await self._ws.close()
        await self._closed.wait()

    async def close(self) -> None:
        """Hang up if still connected, and stop every task the phone started."""
        if self._ws is not None and not self._closed.is_set():
            await self.hang_up()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


    # -- the caller --------------------------------------------------------------------------

    def say(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz PCM to be streamed in real time after what is already queued."""
        self.microphone.queue(pcm)

    def say_text(self, text: str) -> bytes:
        """Synthesise ``text`` with espeak-ng, queue it like ``say`` and return the PCM."""
        pcm = synthesize_speech(text)
        self.say(pcm)
        return pcm

    def press(self, digit: str) -> None:
        """Send a keypad press (``dtmf``) with the next media frame."""
        self._digits.append(digit)

    async def send_raw(self, message: str | bytes) -> None:
        """Send one frame exactly as given (text or binary), for protocol-abuse tests."""
        if self._ws is None:
            raise RuntimeError("SimulatedPhone.send_raw() before start()")
        async with self._send_lock:
            await self._ws.send(message)

    # -- what the caller heard ---------------------------------------------------------------

    def heard_pcm(self) -> bytes:
        """16-bit 8 kHz PCM of all audio that has played, in order, without idle gaps."""
        return mulaw_to_pcm(bytes(self._playout.heard))

    @property
    def heard_voiced_s(self) -> float:
        """Seconds of non-silent audio that have played."""
        return self._playout.voiced_s

    @property
    def buffered_ms(self) -> float:
        """Audio queued in the playout buffer and not yet played, in milliseconds."""
        return self._playout.queued_bytes * 1000 / BYTES_PER_S

    @property
    def is_open(self) -> bool:
        """True between ``start()`` and the socket closing."""
        return self._ws is not None and not self._closed.is_set()

    @property
    def events(self) -> list[PhoneEvent]:
        """Timeline of what happened, in order."""
        return self.timeline.events

    def events_of(self, kind: str) -> list[PhoneEvent]:
        """The timeline entries of one kind."""
        return self.timeline.of(kind)

    def received_of(self, event: str) -> list[dict[str, Any]]:
        """The server messages whose ``event`` field equals ``event``."""
        return [message for message in self.received if message.get("event") == event]

    # -- waiting -----------------------------------------------------------------------------

    async def wait_for_heard(self, seconds: float, *, timeout: float = 10.0) -> None:
        """Wait until at least ``seconds`` of non-silent audio have played."""
        await self._wait(
            lambda: self._playout.voiced_s >= seconds, timeout, f"{seconds} s heard"
        )

    async def wait_for_mark(
        self, name: str | None = None, *, count: int = 1, timeout: float = 10.0
    ) -> None:
        """Wait until ``count`` marks (named ``name``, if given) have been echoed."""
        def done() -> bool:
            matching = [m for m in self.echoed_marks if name is None or m == name]
            return len(matching) >= count
        await self._wait(done, timeout, f"{count} mark(s) {name or ''} echoed")

    async def wait_for_received(
        self, event: str, *, count: int = 1, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Wait until the server has sent ``count`` messages of ``event``; return the last."""
        await self._wait(
            lambda: len(self.received_of(event)) >= count, timeout, f"{count} {event} received"
        )
        return self.received_of(event)[count - 1]

    async def wait_said(self, *, timeout: float = 30.0) -> None:
        """Wait until all speech queued with ``say`` has been sent to the server."""
        def sent() -> bool:
            return not self.microphone.has_speech and not self._frame_in_flight

        await self._wait(sent, timeout, "queued speech sent")

    async def wait_until_quiet(self, *, quiet_s: float = 0.5, timeout: float = 10.0) -> None:
        """Wait until no non-silent audio has played or been queued for ``quiet_s``."""
        async def quiet() -> None:
            while True:
                if self._playout.queued_voiced:
                    await self.timeline.next_change()
                    continue
                remaining = self._playout.last_voiced_end + quiet_s - time.monotonic()
                if remaining <= 0:
                    return
                await self.timeline.next_change(remaining)
        try:
            await asyncio.wait_for(quiet(), timeout)
        except TimeoutError:
            raise TimeoutError(f"phone not quiet for {quiet_s} s within {timeout} s") from None

    async def wait_closed(self, *, timeout: float | None = 10.0) -> None:
        """Wait until the WebSocket has closed (either side); ``timeout=None`` waits forever."""
        await self._wait(self._closed.is_set, timeout, "socket closed")

    # -- internals ---------------------------------------------------------------------------

    def _event(self, kind: str, **data: Any) -> None:
        self.timeline.add(kind, **data)

    async def _wait(
        self, predicate: Callable[[], bool], timeout: float | None, what: str
    ) -> None:
        def failure() -> str:
            return (f"SimulatedPhone: {what} not reached within {timeout} s "
                    f"(heard {self._playout.voiced_s:.2f} s, marks {self.echoed_marks}, "
                    f"closed {self._closed.is_set()})")

        await self.timeline.wait(predicate, timeout, failure)

    async def _send_json(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._write(message)

    async def _send_event(self, kind: str, body: dict[str, Any]) -> None:
        """Send ``{event, sequenceNumber, <kind>: body, streamSid}``, numbered like Twilio."""
        async with self._send_lock:
            self._sequence += 1
            sequence = str(self._sequence)
            message = {"event": kind, "sequenceNumber": sequence, kind: body}
            await self._write({**message, "streamSid": self.stream_sid})

    async def _write(self, message: dict[str, Any]) -> None:
        """Send under the send lock; nothing goes out after ``stop``."""
        assert self._ws is not None
        if self._stopped:
            return
        await self._ws.send(json.dumps(message))
        self.sent.append(message)
        if message["event"] == "stop":
            self._stopped = True

    async def _stream_loop(self) -> None:
        try:
            await self._stream()
        except ConnectionClosed:
            return

    async def _stream(self) -> None:
        started = time.monotonic()
        chunk = 0
        while True:
            deadline = started + chunk * FRAME_S
            delay = deadline - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -MAX_LAG_S:
                started -= delay
            chunk += 1
            while self._digits:
                digit = self._digits.popleft()
                await self._send_event("dtmf", {"track": "inbound_track", "digit": digit})
                self._event("dtmf_sent", digit=digit)
            self._frame_in_flight = True
            await self._send_event("media", {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str((chunk - 1) * 20),
                "payload": base64.b64encode(
                    self.microphone.next_frame(captured_at=deadline - FRAME_S)
                ).decode(),
            })
            self._frame_in_flight = False
            self.microphone.frame_sent()
            self.timeline.changed()

    async def _receive_loop(self) -> None:
        assert self._ws is not None
        try:
            async for frame in self._ws:
                await self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            self.closed_by_server = not self._hanging_up
            self.close_code = self._ws.close_code
            self.close_reason = self._ws.close_reason
            self._closed.set()
            self._event("closed", by_server=self.closed_by_server, code=self.close_code)
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()

    async def _handle(self, frame: str | bytes) -> None:
        message: Any = None
        if isinstance(frame, str):
            try:
                message = json.loads(frame)
            except ValueError:
                message = None
        if not isinstance(message, dict):
            self.invalid_received.append(frame)
            self._event("invalid_received")
            return
        self.received.append(message)
        kind = message.get("event")
        if kind == "media":
            try:
                audio = base64.b64decode(message["media"]["payload"], validate=True)
            except (KeyError, TypeError, binascii.Error):
                self.invalid_received.append(frame)
                self._event("invalid_received")
                return
            self._playout.add_media(audio)
            self._event("media_received", bytes=len(audio))
        elif kind == "mark":
            name = str((message.get("mark") or {}).get("name", ""))
            self._playout.add_mark(name)
            self._event("mark_received", name=name)
        elif kind == "clear":
            self._event("clear_received", dropped_bytes=self._playout.queued_bytes)
            await self._playout.clear()
        else:
            self._event("message_received", event=kind)

    async def _echo(self, name: str, cleared: bool) -> None:
        self.echoed_marks.append(name)
        self._event("mark_echoed", name=name, cleared=cleared)
        try:
            await self._send_event("mark", {"name": name})
        except ConnectionClosed:
            pass
