"""SimulatedPhone against a scripted Media Streams server: Twilio's wire format and playout."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from patter.testing._server import LoopbackServer
from patter.testing.audio import (
    best_match,
    mulaw_to_pcm,
    pcm_to_mulaw,
    synthesize_speech,
    tone,
)
from patter.testing.phone import SimulatedPhone


class ServerSide:
    """The application's end of one stream: what it received, and a way to send."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.headers = dict(ws.headers)
        self.messages: list[dict[str, Any]] = []
        self.binary: list[bytes] = []
        self.texts: list[str] = []
        self.disconnected = asyncio.Event()
        self._change = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                frame = await self.ws.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                if frame.get("bytes") is not None:
                    self.binary.append(frame["bytes"])
                else:
                    text = frame["text"]
                    try:
                        self.messages.append(json.loads(text))
                    except ValueError:
                        self.texts.append(text)
                self._change.set()
                self._change = asyncio.Event()
        except WebSocketDisconnect:
            pass
        self.disconnected.set()
        self._change.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == event]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._change.wait()

    async def wait_for(self, event: str, count: int = 1) -> None:
        await self.wait_until(lambda: len(self.of(event)) >= count)

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(message))

    async def play(self, ulaw: bytes, *, frame_bytes: int = 160) -> None:
        for start in range(0, len(ulaw), frame_bytes):
            payload = base64.b64encode(ulaw[start : start + frame_bytes]).decode()
            await self.send({"event": "media", "streamSid": "MZ", "media": {"payload": payload}})

    async def mark(self, name: str) -> None:
        await self.send({"event": "mark", "streamSid": "MZ", "mark": {"name": name}})


class MediaServer:
    """A loopback WebSocket server handing each accepted stream to the test."""

    def __init__(self) -> None:
        self.app = FastAPI()
        self.streams: asyncio.Queue[ServerSide] = asyncio.Queue()

        @self.app.websocket("/media")
        async def media(ws: WebSocket) -> None:
            await ws.accept()
            side = ServerSide(ws)
            await self.streams.put(side)
            await side.run()

    async def next_stream(self) -> ServerSide:
        return await asyncio.wait_for(self.streams.get(), timeout=10)


@pytest.fixture
async def server() -> AsyncIterator[tuple[MediaServer, str]]:
    media = MediaServer()
    async with LoopbackServer(media.app) as loopback:
        yield media, f"{loopback.ws_url}/media"


@pytest.fixture
async def connected(
    server: tuple[MediaServer, str],
) -> AsyncIterator[tuple[SimulatedPhone, ServerSide]]:
    media, url = server
    async with SimulatedPhone(url, custom_parameters={"token": "t0k"}) as phone:
        side = await media.next_stream()
        await side.wait_for("start")
        yield phone, side


async def test_phone_opens_with_connected_and_start_exactly_like_twilio(
    server: tuple[MediaServer, str],
) -> None:
    media, url = server
    phone = SimulatedPhone(
        url, headers={"x-twilio-signature": "sig=="}, custom_parameters={"token": "abc"},
        account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32,
    )
    async with phone:
        side = await media.next_stream()
        await side.wait_for("start")
        connected, start = side.messages[:2]
    assert connected == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    assert start == {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "streamSid": phone.stream_sid,
            "accountSid": "AC" + "1" * 32,
            "callSid": "CA" + "2" * 32,
            "tracks": ["inbound"],
            "customParameters": {"token": "abc"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
        "streamSid": phone.stream_sid,
    }
    assert phone.stream_sid.startswith("MZ")
    assert side.headers["x-twilio-signature"] == "sig=="


async def test_media_frames_carry_20_ms_string_counters_and_silence(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    await side.wait_for("media", count=26)
    frames = side.of("media")[:26]
    assert [f["media"]["chunk"] for f in frames] == [str(n) for n in range(1, 27)]
    assert [f["media"]["timestamp"] for f in frames] == [str(20 * n) for n in range(26)]
    sequence = [int(f["sequenceNumber"]) for f in frames]
    assert sequence == list(range(sequence[0], sequence[0] + 26))
    assert all(f["media"]["track"] == "inbound" for f in frames)
    assert all(base64.b64decode(f["media"]["payload"]) == b"\xff" * 160 for f in frames)


async def test_caller_speech_is_streamed_in_order_after_what_is_queued(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    first = phone.say_text("hello there")
    second = synthesize_speech("goodbye now")
    phone.say(second)
    await phone.wait_said()
    sent = len(phone.sent)
    await side.wait_until(lambda: len(side.messages) >= sent)
    inbound = b"".join(base64.b64decode(m["media"]["payload"]) for m in side.of("media"))
    heard_by_server = mulaw_to_pcm(inbound)
    assert best_match(heard_by_server, first) > 0.9
    assert best_match(heard_by_server, second) > 0.9
    assert heard_by_server.find(mulaw_to_pcm(pcm_to_mulaw(first))[:3200]) < heard_by_server.find(
        mulaw_to_pcm(pcm_to_mulaw(second))[:3200]
    )
    kinds = [e.kind for e in phone.events]
    assert kinds.index("caller_audio_started") < kinds.index("caller_audio_ended")


async def test_a_key_press_is_sent_as_a_twilio_dtmf_message(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    phone.press("5")
    await side.wait_for("dtmf")
    dtmf = side.of("dtmf")[0]
    assert dtmf["dtmf"] == {"track": "inbound_track", "digit": "5"}
    assert dtmf["streamSid"] == phone.stream_sid
    assert int(dtmf["sequenceNumber"]) > 1


async def test_a_mark_is_echoed_only_after_the_audio_before_it_has_played(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    audio = pcm_to_mulaw(tone(440, 0.5))
    await side.play(audio)
    await side.mark("after-tone")
    await phone.wait_for_received("mark")
    assert phone.echoed_marks == []
    assert phone.buffered_ms > 0
    await side.wait_for("mark")
    echo = side.of("mark")[0]
    assert echo["mark"] == {"name": "after-tone"}
    assert echo["streamSid"] == phone.stream_sid
    assert len(phone.heard_pcm()) == 2 * len(audio)
    started = phone.events_of("playout_started")[0].t
    echoed = phone.events_of("mark_echoed")[0].t
    assert echoed - started >= 0.48  # 0.5 s of audio plays in real time before the echo


async def test_clear_drops_queued_audio_and_echoes_pending_marks_at_once(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    await side.play(pcm_to_mulaw(tone(440, 3.0)))
    await side.mark("first")
    await side.play(pcm_to_mulaw(tone(660, 1.0)))
    await side.mark("second")
    await phone.wait_for_heard(0.2)
    await side.send({"event": "clear", "streamSid": phone.stream_sid})
    await side.wait_for("mark", count=2)
    assert [m["mark"]["name"] for m in side.of("mark")] == ["first", "second"]
    assert all(e.data["cleared"] for e in phone.events_of("mark_echoed"))
    assert phone.buffered_ms == 0
    heard_at_echo = len(phone.heard_pcm())
    assert heard_at_echo < 2 * 8000 * 3.0
    await phone.wait_until_quiet(quiet_s=0.1)
    assert len(phone.heard_pcm()) == heard_at_echo


async def test_heard_pcm_is_exactly_the_audio_played_without_idle_gaps(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    speech = pcm_to_mulaw(synthesize_speech("testing one two three"))
    beep = pcm_to_mulaw(tone(880, 0.3))
    await side.play(speech, frame_bytes=333)
    await side.mark("speech")
    await phone.wait_for_mark("speech")
    await phone.wait_until_quiet(quiet_s=0.2)
    await side.play(beep)
    await side.mark("beep")
    await phone.wait_for_mark("beep")
    assert phone.heard_pcm() == mulaw_to_pcm(speech + beep)
    assert best_match(phone.heard_pcm(), mulaw_to_pcm(speech)) > 0.99
    assert len(phone.events_of("playout_started")) == 2


async def test_hang_up_sends_stop_then_closes(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    await phone.hang_up()
    await asyncio.wait_for(side.disconnected.wait(), 10)
    stop = side.messages[-1]
    assert stop["event"] == "stop"
    assert stop["stop"] == {"accountSid": phone.account_sid, "callSid": phone.call_sid}
    assert stop["streamSid"] == phone.stream_sid
    assert not phone.closed_by_server
    assert not phone.is_open


async def test_a_close_by_the_server_is_recorded_with_its_code(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    await side.ws.close(code=1008)
    await phone.wait_closed()
    assert phone.closed_by_server
    assert phone.close_code == 1008
    assert phone.events_of("closed")[0].data == {"by_server": True, "code": 1008}


async def test_a_misbehaving_phone_can_skip_start_and_send_raw_frames(
    server: tuple[MediaServer, str],
) -> None:
    media, url = server
    async with SimulatedPhone(url, send_start=False) as phone:
        side = await media.next_stream()
        await phone.send_raw(b"\x00\x01binary")
        await phone.send_raw("not json")
        await side.wait_for("media")
        await side.wait_until(lambda: bool(side.binary and side.texts))
    assert side.of("start") == []
    assert side.binary == [b"\x00\x01binary"]
    assert side.texts == ["not json"]


async def test_frames_the_phone_cannot_understand_are_kept_apart(
    connected: tuple[SimulatedPhone, ServerSide],
) -> None:
    phone, side = connected
    await side.ws.send_bytes(b"\x01\x02")
    await side.ws.send_text("{broken")
    await side.send({"event": "media", "media": {"payload": "***"}})
    await side.send({"event": "custom"})
    await phone.wait_for_received("custom")
    assert phone.invalid_received[:2] == [b"\x01\x02", "{broken"]
    assert len(phone.invalid_received) == 3
    assert phone.heard_pcm() == b""
