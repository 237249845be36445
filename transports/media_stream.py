"""The Twilio Media Streams WebSocket: message framing, size caps and the start handshake."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from patter._log import get_logger
from patter._validate import CALL_SID
from patter.transports._stream_messages import MalformedMessage

logger = get_logger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024
START_TIMEOUT_S = 5.0
STREAM_SID = re.compile(r"^MZ[0-9a-f]{32}\Z")


class StreamRejected(Exception):
    """The peer broke the Media Streams protocol; the socket must be closed."""


@dataclass(frozen=True)
class StreamStart:
    """What Twilio's ``start`` message says about the stream."""

    stream_sid: str
    call_sid: str
    account_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)


class MediaStreamSocket:
    """One Media Streams WebSocket: JSON text frames in and out, with a size cap.

    A frame over ``max_message_bytes`` raises ``StreamRejected`` (the call ends). Binary
    frames, non-JSON text and JSON that is not an object raise ``MalformedMessage``: before
    ``start`` that refuses the stream, after it the message is skipped. A disconnect makes
    ``receive`` return ``None``.
    """

    def __init__(self, websocket: WebSocket, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self._ws = websocket
        self._max = max_message_bytes
        self.stream_sid = ""
        self._send_lock = asyncio.Lock()

    async def receive(self) -> dict[str, Any] | None:
        """The next message as a dict, or ``None`` once the peer has gone."""
        try:
            message = await self._ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        size = len(text if text is not None else message.get("bytes") or b"")
        if size > self._max:
            raise StreamRejected(f"message of {size} bytes over the {self._max}-byte cap")
        if text is None:
            raise MalformedMessage("binary frame")
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):  # bad JSON, an over-long number, deep nesting
            raise MalformedMessage("non-JSON text frame") from None
        if not isinstance(parsed, dict):
            raise MalformedMessage("JSON message is not an object")
        return parsed

    async def read_start(self, timeout_s: float = START_TIMEOUT_S) -> StreamStart:
        """Read ``connected`` (optional) then ``start``, within ``timeout_s`` in all."""
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    message = await self.receive()
                    if message is None:
                        raise StreamRejected("closed before start")
                    event = message.get("event")
                    if event == "connected":
                        continue
                    if event != "start":
                        shown = event[:20] if isinstance(event, str) else type(event).__name__
                        raise StreamRejected(f"{shown!r} before start")
                    return _parse_start(message)
        except MalformedMessage as exc:
            raise StreamRejected(f"{exc} before start") from None
        except TimeoutError:
            raise StreamRejected(f"no start within {timeout_s:g} s") from None

    async def send(self, message: dict[str, Any]) -> bool:
        """Send one message; False if the socket is gone."""
        if self._ws.application_state != WebSocketState.CONNECTED:
            return False
        try:
            async with self._send_lock:
                await self._ws.send_text(json.dumps(message, separators=(",", ":")))
        except (WebSocketDisconnect, RuntimeError, OSError):
            return False  # the peer vanished mid-send; the receive loop reports the hang-up
        return True

    async def send_media(self, payload_b64: str) -> bool:
        """Send agent audio (base64 mu-law)."""
        return await self.send(
            {"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload_b64}}
        )

    async def send_mark(self, name: str) -> bool:
        """Ask Twilio to echo ``name`` once the audio sent so far has played."""
        return await self.send(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}}
        )

    async def send_clear(self) -> bool:
        """Ask Twilio to drop the agent audio it has buffered."""
        return await self.send({"event": "clear", "streamSid": self.stream_sid})

    async def close(self, code: int = 1000) -> None:
        """Close the socket (no-op if already closed)."""
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self._ws.close(code)  # may race a close from the other side


def _parse_start(message: dict[str, Any]) -> StreamStart:
    start = message.get("start")
    if not isinstance(start, dict):
        raise StreamRejected("start without a start object")
    params = start.get("customParameters") or {}
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise StreamRejected("customParameters is not an object of strings")
    stream_sid = start.get("streamSid") or message.get("streamSid")
    call_sid = start.get("callSid")
    account_sid = start.get("accountSid")
    if not isinstance(stream_sid, str) or not STREAM_SID.match(stream_sid):
        raise StreamRejected("start without a well-formed streamSid")
    if not isinstance(call_sid, str) or not CALL_SID.match(call_sid):
        raise StreamRejected("start without a well-formed callSid")
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=call_sid,
        account_sid=account_sid if isinstance(account_sid, str) else "",
        custom_parameters=dict(params),
    )
