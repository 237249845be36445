"""A loopback fake of Deepgram's live transcription WebSocket (``/v1/listen``).

It hears utterances with a simple energy detector and answers each with the next
text the test queued in ``fake.transcripts``::

    async with FakeDeepgram(api_key="dg-test") as fake:
        fake.transcripts.append("I'd like to book a table.")
        stt = DeepgramSTTService(api_key="dg-test", base_url=fake.base_url)
"""

from __future__ import annotations

import audioop
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from patter.audio import level_dbfs
from patter.testing._fake_base import FakeService, first_values, public_headers
from patter.testing.faults import CUT, DROP, HANG, HTTP, Fault, supports

FRAME_MS = 20
MODEL_INFO = {"name": "general-nova-3", "version": "2025-01-01.0", "arch": "nova-3"}


@dataclass
class DeepgramConnection:
    """One live transcription session as the fake saw it."""

    params: dict[str, str]
    headers: dict[str, str]
    audio: bytearray = field(default_factory=bytearray)
    control_messages: list[dict[str, Any]] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False
    drop_requested: bool = False  # set by FakeDeepgram.drop_open_sockets()

    @property
    def sample_rate_hz(self) -> int:
        """The ``sample_rate`` query parameter (16000 if absent)."""
        return int(self.params.get("sample_rate", "16000"))


class _Utterances:
    """Energy-based utterance detector over 20 ms frames, in audio time."""

    def __init__(self, fake: FakeDeepgram, conn: DeepgramConnection) -> None:
        self.fake = fake
        self.conn = conn
        self.rate = conn.sample_rate_hz
        self.mulaw = conn.params.get("encoding", "linear16") == "mulaw"
        self.interim = conn.params.get("interim_results", "false") == "true"
        self.utterance_end_s = int(conn.params["utterance_end_ms"]) / 1000 if (
            conn.params.get("utterance_end_ms", "").isdigit()) else None
        self.frame_bytes = self.rate * FRAME_MS // 1000 * (1 if self.mulaw else 2)
        self.pending = bytearray()
        self.now = 0.0  # seconds of audio processed
        self.start: float | None = None  # start of the current utterance
        self.last_voice = 0.0
        self.pcm = bytearray()  # audio of the current utterance
        self.text = ""
        self.interim_sent = False
        self.awaiting_end: float | None = None  # last_word_end awaiting UtteranceEnd

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Take audio, return the messages it triggers."""
        self.pending += data
        out: list[dict[str, Any]] = []
        while len(self.pending) >= self.frame_bytes:
            frame = bytes(self.pending[: self.frame_bytes])
            del self.pending[: self.frame_bytes]
            pcm = audioop.ulaw2lin(frame, 2) if self.mulaw else frame
            out += self._frame(pcm)
        return out

    def _frame(self, pcm: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        loud = level_dbfs(pcm) > self.fake.speech_threshold_dbfs
        begin, self.now = self.now, self.now + FRAME_MS / 1000
        if loud:
            if self.start is None:
                self.start, self.interim_sent, self.awaiting_end = begin, False, None
                queued = self.fake.transcripts and self.fake.transcriber is None
                self.text = self.fake.transcripts.pop(0) if queued else ""
            self.last_voice = self.now
        if self.start is None:
            if self.awaiting_end is not None and self.now - self.awaiting_end >= (
                    self.utterance_end_s or 0):
                out.append({"type": "UtteranceEnd", "channel": [0, 1],
                            "last_word_end": round(self.awaiting_end, 3)})
                self.awaiting_end = None
            return out
        self.pcm += pcm
        heard = self.last_voice - self.start
        if self.interim and not self.interim_sent and heard >= self.fake.interim_after_s:
            self.interim_sent = True
            out.append(self._results(self._interim_text(), is_final=False))
        if self.now - self.last_voice >= self.fake.end_silence_s:
            out += self.finish(speech_final=True)
        return out

    def _interim_text(self) -> str:
        if self.fake.transcriber is not None:
            return self.fake.transcriber(bytes(self.pcm), self.rate)
        words = self.text.split()
        return " ".join(words[: max(1, len(words) // 2)])

    def finish(self, *, speech_final: bool, from_finalize: bool = False) -> list[dict[str, Any]]:
        """End the current utterance (if any) with a final result."""
        if self.start is None:
            if from_finalize:
                return [self._results("", is_final=True, from_finalize=True)]
            return []
        text = self.fake.transcriber(bytes(self.pcm), self.rate) if (
            self.fake.transcriber is not None) else self.text
        self.fake.utterances.append(text)
        message = self._results(text, is_final=True, speech_final=speech_final,
                                from_finalize=from_finalize)
        if self.utterance_end_s is not None and text:
            self.awaiting_end = self.last_voice
        self.start, self.pcm = None, bytearray()
        return [message]

    def _results(self, text: str, *, is_final: bool, speech_final: bool = False,
                 from_finalize: bool = False) -> dict[str, Any]:
        start = self.start if self.start is not None else self.now
        end = self.last_voice if self.start is not None else self.now
        return {
            "type": "Results", "channel_index": [0, 1], "start": round(start, 3),
            "duration": round(max(end - start, 0.0), 3), "is_final": is_final,
            "speech_final": speech_final, "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": 0.99, "words": _words(text, start, end)}]},
            "metadata": {"request_id": self.fake.request_id, "model_info": MODEL_INFO,
                         "model_uuid": self.fake.model_uuid},
        }


def _dropped(fault: Fault | None, conn: DeepgramConnection) -> bool:
    """Whether a ``drop`` (any message in) or ``cut`` (a message out) fault, or
    ``drop_open_sockets()``, ends the socket now."""
    if conn.drop_requested:
        return True
    if fault is None:
        return False
    return fault.kind == DROP or (fault.kind == CUT and bool(conn.sent))


def _words(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Word entries spread over [start, end] in proportion to their length."""
    words = text.split()
    total = sum(len(w) for w in words) or 1
    entries, t = [], start
    for word in words:
        span = (end - start) * len(word) / total
        entries.append({"word": word.strip(".,!?;:").lower(), "start": round(t, 3),
                        "end": round(t + span, 3), "confidence": 0.99,
                        "punctuated_word": word})
        t += span
    return entries


class FakeDeepgram(FakeService):
    """Fake of Deepgram's streaming ``/v1/listen`` WebSocket (the one DeepgramSTTService uses).

    Scripting:
      * ``transcripts``: one text per utterance the fake detects, used in order
        ("" once empty); or ``transcriber = f(pcm, sample_rate) -> str``.
      * ``speech_threshold_dbfs`` (-40), ``end_silence_s`` (0.3), ``interim_after_s``
        (0.3): the detector. An interim result (half the words) goes out after
        ``interim_after_s`` of speech if ``interim_results=true``; a final one
        (``is_final`` and ``speech_final``) after ``end_silence_s`` of quiet.
      * ``Finalize`` ends the current utterance at once (``from_finalize: true``),
        ``CloseStream`` finishes it, sends ``Metadata`` and closes; ``KeepAlive`` is
        recorded. ``UtteranceEnd`` follows when ``utterance_end_ms`` was asked for.

    Faults (``fake.faults.add("listen", fault)``, see :mod:`patter.testing.faults`): ``http``
    refuses the handshake with that status, ``hang`` never completes it, ``cut`` closes
    the socket abruptly after the first message the fake sends, ``drop`` on the first
    message the client sends.

    Recording: ``connections`` (:class:`DeepgramConnection`: query params, headers,
    audio, control messages, messages sent), ``audio_received``, ``utterances``.
    A handshake without ``Authorization: Token <api_key>`` is refused with HTTP 401, and so
    is ``GET /v1/projects`` (the key check ``patter doctor`` makes).
    """

    def __init__(self, api_key: str = "dg-test") -> None:
        self.api_key = api_key
        self.transcripts: list[str] = []
        self.transcriber: Callable[[bytes, int], str] | None = None
        self.speech_threshold_dbfs = -40.0
        self.end_silence_s = 0.3
        self.interim_after_s = 0.3
        self.connections: list[DeepgramConnection] = []
        self.utterances: list[str] = []
        self.request_id = str(uuid.uuid4())
        self.model_uuid = str(uuid.uuid4())
        app = FastAPI()
        app.websocket("/v1/listen")(self._listen)
        app.get("/v1/projects")(self._projects)
        super().__init__(app, supports("listen", faults=(HTTP, HANG, CUT, DROP)))

    @property
    def base_url(self) -> str:
        """``ws://127.0.0.1:PORT``: DeepgramSTTService's ``base_url`` (it adds ``/v1/listen``)."""
        return self.ws_url

    @property
    def audio_received(self) -> bytes:
        """All audio bytes received, over every connection."""
        return b"".join(bytes(c.audio) for c in self.connections)

    @property
    def results(self) -> list[dict[str, Any]]:
        """Every ``Results`` message sent, over every connection."""
        return [m for c in self.connections for m in c.sent if m.get("type") == "Results"]

    def drop_open_sockets(self) -> int:
        """Make every open socket die abruptly (no close frame) at its next client message,
        as ``Fault.drop()`` does at the first: a drop in the middle of a session, e.g.
        mid-utterance. Returns how many sockets were open."""
        live = [c for c in self.connections if not c.closed]
        for conn in live:
            conn.drop_requested = True
        return len(live)

    async def _projects(self, request: Request) -> JSONResponse:
        """``GET /v1/projects``: the account's projects (the key check ``patter doctor`` makes)."""
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("token ") or auth[6:].strip() != self.api_key:
            return JSONResponse(self._invalid_auth(), status_code=401)
        return JSONResponse({"projects": [{"project_id": self.request_id, "name": "Fake"}]})

    def _invalid_auth(self) -> dict[str, str]:
        return {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                "request_id": self.request_id}

    def _authorized(self, ws: WebSocket) -> tuple[bool, str | None]:
        auth = ws.headers.get("authorization", "")
        if auth.lower().startswith(("token ", "bearer ")):
            return auth.split(" ", 1)[1].strip() == self.api_key, None
        protocols = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
        if len(protocols) == 2 and protocols[0].lower() in ("token", "bearer"):
            return protocols[1] == self.api_key, protocols[0]
        return False, None

    async def _listen(self, ws: WebSocket) -> None:
        conn = DeepgramConnection(params=first_values(ws.query_params.multi_items()),
                                  headers=public_headers(ws.headers.items()))
        self.connections.append(conn)
        await self._changed()
        ok, subprotocol = self._authorized(ws)
        if not ok:
            await self._deny(ws, 401, "INVALID_AUTH", "Invalid credentials.")
            return
        fault = await self._take_fault("listen")
        if fault is not None and fault.kind == HTTP:
            await self._deny(ws, fault.status, "FAULT", "FakeDeepgram fault.", fault.headers())
            return
        if fault is not None and fault.kind == HANG:
            await self.faults.hang()
            return
        await ws.accept(subprotocol=subprotocol)
        detector = _Utterances(self, conn)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if _dropped(fault, conn):
                    return  # closed without a close frame: the client sees the socket die
                if message.get("bytes") is not None:
                    conn.audio += message["bytes"]
                    await self._send(ws, conn, detector.feed(message["bytes"]))
                    if _dropped(fault, conn):
                        return
                    continue
                control = json.loads(message.get("text") or "{}")
                conn.control_messages.append(control)
                await self._changed()
                kind = control.get("type")
                if kind == "Finalize":
                    await self._send(ws, conn, detector.finish(speech_final=False,
                                                               from_finalize=True))
                elif kind == "CloseStream":
                    await self._send(ws, conn, detector.finish(speech_final=True))
                    await self._send(ws, conn, [self._metadata(conn, detector.now)])
                    await ws.close(code=1000)
                    break
        except WebSocketDisconnect:
            pass
        finally:
            conn.closed = True
            await self._changed()

    async def _deny(self, ws: WebSocket, status: int, code: str, message: str,
                    headers: dict[str, str] | None = None) -> None:
        body = {"err_code": code, "err_msg": message, "request_id": self.request_id}
        await ws.send_denial_response(JSONResponse(body, status_code=status, headers=headers))

    async def _send(self, ws: WebSocket, conn: DeepgramConnection,
                    messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if ws.client_state != WebSocketState.CONNECTED:
                return
            await ws.send_text(json.dumps(message))
            conn.sent.append(message)
            await self._changed()

    def _metadata(self, conn: DeepgramConnection, duration: float) -> dict[str, Any]:
        return {
            "type": "Metadata", "transaction_key": "deprecated", "request_id": self.request_id,
            "sha256": hashlib.sha256(bytes(conn.audio)).hexdigest(),
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "duration": round(duration, 3), "channels": 1, "models": [self.model_uuid],
            "model_info": {self.model_uuid: MODEL_INFO},
        }
