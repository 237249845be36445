"""Media Streams messages after ``start``: validated in one place, malformed ones skipped.

Property tests of the parser alone (many examples, fast), then of the input transport
reading a generated batch of frames from a WebSocket peer, without a real-time call.
"""

from __future__ import annotations

import asyncio
import audioop
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _hostile_streams import (
    KEYPAD,
    SILENT,
    examples,
    hostile_frames,
    hostile_messages,
    ignored_fields,
    json_values,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.websockets import WebSocket

from patter._pipecat import InputAudioRawFrame, InputDTMFFrame
from patter.testing.pipeline import Harness, running_pipeline
from patter.transports import _stream_messages
from patter.transports._stream_messages import (
    CallerAudio,
    KeyPressed,
    MalformedMessage,
    MarkEchoed,
    SkippedMessages,
    StreamStopped,
    parse_event,
)
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.twilio_transport import TwilioMediaTransport

PARSER_EXAMPLES = 1500
VALID_EXAMPLES = 300
FRAMES_PER_STREAM = 1000
"""Counted in docs/reliability.md ("Bad input"); keep the two in step."""

PROPERTY = settings(deadline=None, derandomize=True, database=None)


@settings(PROPERTY, max_examples=PARSER_EXAMPLES)
@given(st.one_of(hostile_messages, json_values))
def test_the_parser_skips_any_message_it_cannot_use_and_never_fails_otherwise(
    message: Any,
) -> None:
    try:
        event = parse_event(message)
    except MalformedMessage as exc:
        assert str(exc)
        return
    # What got through is usable: audio (generated audio is only silence), or a stop.
    assert isinstance(event, CallerAudio | StreamStopped), event
    if isinstance(event, CallerAudio):
        assert event.ulaw and set(event.ulaw) == set(SILENT)


valid_messages = st.one_of(
    st.builds(lambda n, extra: ({**extra, "event": "media", "media": {
        "track": "inbound", "payload": base64.b64encode(bytes(range(n))).decode()}},
        CallerAudio(bytes(range(n)))), st.integers(1, 255), ignored_fields),
    st.builds(lambda digit, extra: ({**extra, "event": "dtmf",
                                     "dtmf": {"track": "inbound_track", "digit": digit}},
                                    digit), st.sampled_from(sorted(KEYPAD)), ignored_fields),
    st.builds(lambda position, extra: ({**extra, "event": "mark",
                                        "mark": {"name": str(position)}},
                                       MarkEchoed(str(position))),
              st.integers(0, 10**12), ignored_fields),
    st.builds(lambda body, extra: ({**extra, "event": "stop", "stop": body}, StreamStopped()),
              json_values, ignored_fields),
)


@settings(PROPERTY, max_examples=VALID_EXAMPLES)
@given(valid_messages)
def test_valid_messages_parse_whatever_their_ignored_fields_hold(case: tuple[Any, Any]) -> None:
    message, expected = case
    event = parse_event(message)
    if isinstance(event, KeyPressed):
        assert event.key.value == expected
    else:
        assert event == expected


def test_the_issue_message_a_numeric_payload_is_skipped() -> None:
    with pytest.raises(MalformedMessage, match="payload"):
        parse_event({"event": "media", "media": {"track": "inbound", "payload": 12345}})


def test_skipped_messages_are_logged_a_few_times_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    skipped = SkippedMessages()
    with caplog.at_level(logging.WARNING, logger=_stream_messages.__name__):
        for _ in range(2500):
            skipped.note("media payload is not base64")
        skipped.close()

    lines = [r for r in caplog.records if r.name == _stream_messages.__name__]
    assert len(lines) == _stream_messages.LOGGED_IN_FULL + 1 + 2 + 1  # 5, notice, 1000s, total
    assert lines[-1].skipped == 2500  # type: ignore[attr-defined]
    assert all(r.call_sid for r in lines)  # type: ignore[attr-defined]


class WebSocketPeer:
    """The far end of an ASGI WebSocket: frames queued here reach a ``MediaStreamSocket``."""

    def __init__(self) -> None:
        self._inbox: asyncio.Queue[dict[str, Any] | BaseException] = asyncio.Queue()
        self._inbox.put_nowait({"type": "websocket.connect"})

    async def socket(self) -> MediaStreamSocket:
        """The server side, accepted (as the media route does)."""
        websocket = WebSocket({"type": "websocket", "path": "/twilio/media", "headers": []},
                              self._receive, self._send)
        await websocket.accept()
        return MediaStreamSocket(websocket)

    def send(self, frame: str | bytes) -> None:
        """Queue one text or binary frame."""
        key = "text" if isinstance(frame, str) else "bytes"
        self._inbox.put_nowait({"type": "websocket.receive", key: frame})

    def fail(self, error: BaseException) -> None:
        """Make the next receive raise ``error`` (a transport fault below the socket)."""
        self._inbox.put_nowait(error)

    async def _receive(self) -> dict[str, Any]:
        message = await self._inbox.get()
        if isinstance(message, BaseException):
            raise message
        return message

    async def _send(self, message: dict[str, Any]) -> None:
        pass


@pytest.fixture
async def stream() -> AsyncIterator[tuple[WebSocketPeer, Harness, list[str]]]:
    """A Twilio input transport in a running pipeline, its peer, and its stream-end reasons."""
    peer = WebSocketPeer()
    ended: list[str] = []

    async def on_stream_end(reason: str) -> None:
        ended.append(reason)

    transport = TwilioMediaTransport(await peer.socket(), on_stream_end=on_stream_end)
    async with running_pipeline([transport.input()], audio_in_rate=8000) as harness:
        yield peer, harness, ended


def media(ulaw: bytes) -> str:
    """A well-formed ``media`` message carrying ``ulaw``."""
    payload = base64.b64encode(ulaw).decode()
    return json.dumps({"event": "media", "media": {"track": "inbound", "payload": payload}})


async def test_a_stream_reads_on_past_a_generated_batch_of_hostile_frames(
    stream: tuple[WebSocketPeer, Harness, list[str]], caplog: pytest.LogCaptureFixture,
) -> None:
    peer, harness, ended = stream
    for frame in examples(hostile_frames, FRAMES_PER_STREAM):
        peer.send(frame)
    peer.send(media(b"\x00" * 160))
    peer.send(json.dumps({"event": "dtmf", "dtmf": {"digit": "7"}}))
    peer.send(json.dumps({"event": "stop", "stop": {}}))

    def loud_audio_arrived() -> bool:
        audio = b"".join(f.audio for f in harness.down(InputAudioRawFrame))
        return any(audio[i:i + 2] != b"\x00\x00" for i in range(0, len(audio), 2))

    await harness.wait_for(lambda: ended, timeout=30)
    await harness.wait_for(lambda: harness.down(InputDTMFFrame) and loud_audio_arrived())
    assert [f.button.value for f in harness.down(InputDTMFFrame)] == ["7"]
    assert ended == ["stop"]
    assert "media stream receive loop failed" not in caplog.text


async def test_caller_audio_goes_on_in_40_ms_frames_and_whole_at_a_key_and_at_the_end(
    stream: tuple[WebSocketPeer, Harness, list[str]],
) -> None:
    peer, harness, ended = stream
    # Six 20 ms messages, each a different level, a key after the third, then stop.
    chunks = [bytes([0x80 + step]) * 160 for step in range(6)]
    for chunk in chunks[:3]:
        peer.send(media(chunk))
    peer.send(json.dumps({"event": "dtmf", "dtmf": {"digit": "4"}}))
    for chunk in chunks[3:]:
        peer.send(media(chunk))
    peer.send(json.dumps({"event": "stop", "stop": {}}))
    await harness.wait_for(lambda: ended and len(harness.down(InputAudioRawFrame)) >= 4)

    frames = harness.down(InputAudioRawFrame)
    # Two messages make a frame; the key pushes out the half frame before it, and so does
    # the stop (20 ms = 160 samples).
    assert [len(f.audio) // 2 for f in frames] == [320, 160, 320, 160]
    assert [f.button.value for f in harness.down(InputDTMFFrame)] == ["4"]
    audio = b"".join(f.audio for f in frames)
    assert audio == audioop.ulaw2lin(b"".join(chunks), 2)


async def test_an_unexpected_failure_while_reading_ends_the_stream_once_with_a_traceback(
    stream: tuple[WebSocketPeer, Harness, list[str]], caplog: pytest.LogCaptureFixture,
) -> None:
    peer, harness, ended = stream
    peer.send(media(SILENT * 160))
    peer.fail(ValueError("transport fault"))

    await harness.wait_for(lambda: ended)
    await asyncio.sleep(0.2)  # a second stream end would arrive here
    assert ended == ["error"]
    failure = next(r for r in caplog.records if r.message == "media stream receive loop failed")
    assert failure.exc_info and "transport fault" in str(failure.exc_info[1])
