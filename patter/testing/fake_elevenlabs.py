"""A loopback fake of ElevenLabs text-to-speech: the multi-context WebSocket and HTTP streams.

Speech is real (espeak-ng) at the requested ``output_format`` rate, with a character
alignment spread evenly over the audio, so word timestamps work::

    async with FakeElevenLabs(api_key="xi-test") as fake:
        tts = ElevenLabsTTSService(api_key="xi-test", url=fake.url,
                                   settings=ElevenLabsTTSService.Settings(voice="v1"))
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocketState

from patter.testing._fake_base import FakeService, first_values, public_headers
from patter.testing.audio import pcm_to_mulaw, synthesize_speech
from patter.testing.faults import CUT, DROP, HANG, HTTP, Fault, supports

#: Characters per chunk of text the server waits for before generating, without auto_mode.
FIRST_CHUNK_CHARS = 120


def parse_output_format(output_format: str) -> tuple[int, bool] | None:
    """``"pcm_8000"`` -> (8000, False), ``"ulaw_8000"`` -> (8000, True); None if unsupported."""
    codec, _, rate = output_format.partition("_")
    if codec in ("pcm", "ulaw") and rate.isdigit():
        return int(rate), codec == "ulaw"
    return None


def aligned_chunks(text: str, pcm: bytes, rate: int,
                   chunk_ms: int) -> Iterator[tuple[bytes, list[str], list[int], list[int]]]:
    """Split ``pcm`` into ~``chunk_ms`` chunks cut at character boundaries.

    The characters of ``text`` are spread evenly over the audio; each chunk comes with
    its characters and their start times and durations in ms, relative to the chunk.
    """
    samples = len(pcm) // 2
    chars = list(text)
    if not chars or samples == 0:
        return
    edges = [i * samples // len(chars) for i in range(len(chars))] + [samples]
    target = rate * chunk_ms // 1000
    first = 0
    while first < len(chars):
        last = first + 1
        while last < len(chars) and edges[last] - edges[first] < target:
            last += 1
        base = edges[first]
        ms = [round((edges[i] - base) * 1000 / rate) for i in range(first, last + 1)]
        yield (pcm[base * 2: edges[last] * 2], chars[first:last], ms[:-1],
               [b - a for a, b in itertools.pairwise(ms)])
        first = last


@dataclass
class ElevenLabsContext:
    """One synthesis context of a multi-stream connection."""

    context_id: str
    voice_settings: dict[str, Any] | None = None
    buffer: str = ""
    generated: list[str] = field(default_factory=list)
    closed: bool = False


@dataclass
class ElevenLabsConnection:
    """One multi-stream-input WebSocket as the fake saw it."""

    voice_id: str
    params: dict[str, str]
    headers: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    contexts: dict[str, ElevenLabsContext] = field(default_factory=dict)
    closed: bool = False
    rejected: str | None = None  # reason of a 1008 close, e.g. "Invalid API key"
    fault: Fault | None = None  # the fault this connection plays, if any


class _SocketCut(Exception):
    """A ``cut`` fault ends the socket after its first audio message."""


class FakeElevenLabs(FakeService):
    """Fake of ElevenLabs' ``/v1/text-to-speech/{voice_id}/multi-stream-input`` WebSocket,
    plus the HTTP ``.../stream`` and ``.../stream/with-timestamps`` endpoints.

    WebSocket behaviour: ``{"text": " ", "context_id", "voice_settings"}`` opens a context;
    text is buffered per context and spoken at once with ``auto_mode=true`` (Pipecat's
    default for sentences), otherwise when the buffer passes 120 characters, on
    ``try_trigger_generation`` or on ``flush``. Audio goes out in ``chunk_ms`` chunks as
    base64 ``audio`` with ``alignment``/``normalizedAlignment`` and ``contextId``;
    ``close_context`` drops unflushed text and answers ``isFinal``; ``close_socket``
    flushes every context and closes. A wrong ``xi-api-key`` is closed with 1008.

    Scripting: ``chunk_ms`` (150), ``audio_delay_s`` (0) before each generation.
    Faults (``fake.faults.add("socket", fault)``, see :mod:`patter.testing.faults`): ``http``
    refuses the WebSocket handshake with that status, ``hang`` never completes it, ``cut``
    closes the socket abruptly after the first audio message, ``drop`` on the first
    message the client sends.
    Recording: ``spoken`` (texts synthesised), ``connections``
    (:class:`ElevenLabsConnection`), ``voice_ids``, ``http_requests``.
    """

    def __init__(self, api_key: str = "xi-test") -> None:
        self.api_key = api_key
        self.chunk_ms = 150
        self.audio_delay_s = 0.0
        self.spoken: list[str] = []
        self.connections: list[ElevenLabsConnection] = []
        self.http_requests: list[dict[str, Any]] = []
        app = FastAPI()
        app.websocket("/v1/text-to-speech/{voice_id}/multi-stream-input")(self._multi_stream)
        app.post("/v1/text-to-speech/{voice_id}/stream/with-timestamps")(self._http_timestamps)
        app.post("/v1/text-to-speech/{voice_id}/stream")(self._http_stream)
        app.get("/v1/user")(self._user)
        super().__init__(app, supports("socket", faults=(HTTP, HANG, CUT, DROP)))

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT``: ElevenLabsTTSService's ``url``."""
        return self.ws_url

    @property
    def base_url(self) -> str:
        """Same as :attr:`url`; ElevenLabsHttpTTSService takes :attr:`http_url` instead."""
        return self.ws_url

    @property
    def voice_ids(self) -> list[str]:
        """Voice ids of every WebSocket connection and HTTP request, in order."""
        return [c.voice_id for c in self.connections] + [
            r["voice_id"] for r in self.http_requests]

    async def _speak(self, text: str, output_format: str) -> bytes:
        rate, _ = parse_output_format(output_format) or (0, False)
        pcm = await asyncio.to_thread(synthesize_speech, text, sample_rate_hz=rate)
        self.spoken.append(text)
        await self._changed()
        if self.audio_delay_s:
            await asyncio.sleep(self.audio_delay_s)
        return pcm

    async def _multi_stream(self, ws: WebSocket, voice_id: str) -> None:
        conn = ElevenLabsConnection(voice_id=voice_id,
                                    params=first_values(ws.query_params.multi_items()),
                                    headers=public_headers(ws.headers.items()))
        self.connections.append(conn)
        await self._changed()
        conn.fault = await self._take_fault("socket")
        if conn.fault is not None and conn.fault.kind == HTTP:
            body = {"detail": {"status": "fault", "message": "FakeElevenLabs fault"}}
            await ws.send_denial_response(JSONResponse(body, status_code=conn.fault.status,
                                                       headers=conn.fault.headers()))
            return
        if conn.fault is not None and conn.fault.kind == HANG:
            await self.faults.hang()
            return
        await ws.accept()
        output_format = conn.params.get("output_format", "pcm_24000")
        key = ws.headers.get("xi-api-key")
        try:
            if parse_output_format(output_format) is None:
                await _reject(ws, conn, f"FakeElevenLabs cannot produce {output_format}")
                return
            if key is not None and key != self.api_key:
                await _reject(ws, conn, "Invalid API key")
                return
            auto = conn.params.get("auto_mode", "false") == "true"
            while True:
                message = json.loads(await ws.receive_text())
                if conn.fault is not None and conn.fault.kind == DROP:
                    return  # closed without a close frame: the client sees the socket die
                conn.messages.append(message)
                if key is None:  # credentials may come in the first message instead
                    key = message.get("xi-api-key") or message.get("xi_api_key", "")
                    if key != self.api_key:
                        await _reject(ws, conn, "Invalid API key")
                        return
                await self._changed()
                if message.get("close_socket"):
                    for ctx in conn.contexts.values():
                        if not ctx.closed:
                            await self._generate(ws, ctx, output_format, conn.fault)
                    await ws.close(1000)
                    return
                await self._context_message(ws, conn, message, output_format, auto)
        except (WebSocketDisconnect, _SocketCut):
            pass
        finally:
            conn.closed = True
            await self._changed()

    async def _context_message(self, ws: WebSocket, conn: ElevenLabsConnection,
                               message: dict[str, Any], output_format: str, auto: bool) -> None:
        context_id = message.get("context_id") or message.get("contextId") or "default"
        text = message.get("text") or ""
        if context_id not in conn.contexts or conn.contexts[context_id].closed:
            if not (text or message.get("flush")):
                return  # a keepalive for no context in particular
            conn.contexts[context_id] = ElevenLabsContext(context_id)
        ctx = conn.contexts[context_id]
        if ctx.voice_settings is None and message.get("voice_settings"):
            ctx.voice_settings = message["voice_settings"]
        if message.get("close_context"):
            ctx.buffer, ctx.closed = "", True
            await _send(ws, {"isFinal": True, "contextId": context_id})
            return
        ctx.buffer += text
        if (message.get("flush") or message.get("try_trigger_generation")
                or (auto and text.strip()) or len(ctx.buffer) >= FIRST_CHUNK_CHARS):
            await self._generate(ws, ctx, output_format, conn.fault)

    async def _generate(self, ws: WebSocket, ctx: ElevenLabsContext, output_format: str,
                        fault: Fault | None = None) -> None:
        text, ctx.buffer = ctx.buffer.strip(), ""
        if not text:
            return
        ctx.generated.append(text)
        pcm = await self._speak(text, output_format)
        rate, ulaw = parse_output_format(output_format) or (0, False)
        for audio, chars, starts, durations in aligned_chunks(text + " ", pcm, rate,
                                                              self.chunk_ms):
            alignment = {"chars": chars, "charStartTimesMs": starts,
                         "charDurationsMs": durations}
            payload = pcm_to_mulaw(audio) if ulaw else audio
            await _send(ws, {"audio": base64.b64encode(payload).decode(),
                             "normalizedAlignment": alignment, "alignment": alignment,
                             "contextId": ctx.context_id})
            if fault is not None and fault.kind == CUT:
                raise _SocketCut

    async def _user(self, request: Request) -> JSONResponse:
        """``GET /v1/user``: the account (the key check ``patter doctor`` makes)."""
        if request.headers.get("xi-api-key") != self.api_key:
            return _invalid_key()
        return JSONResponse({"subscription": {"tier": "free", "status": "active"}})

    async def _http_request(self, request: Request, voice_id: str,
                            ) -> tuple[dict[str, Any], str] | Response:
        body = json.loads(await request.body() or b"{}")
        params = first_values(request.query_params.multi_items())
        self.http_requests.append({"voice_id": voice_id, "params": params, "json": body,
                                   "headers": public_headers(request.headers.items())})
        await self._changed()
        if request.headers.get("xi-api-key") != self.api_key:
            return _invalid_key()
        output_format = params.get("output_format", "mp3_44100_128")
        if parse_output_format(output_format) is None:
            return JSONResponse({"detail": {"status": "invalid_output_format", "message":
                                            f"FakeElevenLabs cannot produce {output_format}"}},
                                status_code=400)
        return body, output_format

    async def _http_stream(self, request: Request, voice_id: str) -> Response:
        checked = await self._http_request(request, voice_id)
        if isinstance(checked, Response):
            return checked
        body, output_format = checked
        pcm = await self._speak(str(body.get("text", "")).strip(), output_format)
        _, ulaw = parse_output_format(output_format) or (0, False)
        return Response(pcm_to_mulaw(pcm) if ulaw else pcm, media_type="audio/basic"
                        if ulaw else "audio/pcm")

    async def _http_timestamps(self, request: Request, voice_id: str) -> Response:
        checked = await self._http_request(request, voice_id)
        if isinstance(checked, Response):
            return checked
        body, output_format = checked
        text = str(body.get("text", "")).strip()
        pcm = await self._speak(text, output_format)
        rate, ulaw = parse_output_format(output_format) or (0, False)

        async def lines() -> AsyncIterator[bytes]:
            elapsed = 0.0
            for audio, chars, starts, durations in aligned_chunks(text, pcm, rate,
                                                                  self.chunk_ms):
                begin = [elapsed + s / 1000 for s in starts]
                alignment = {"characters": chars, "character_start_times_seconds": begin,
                             "character_end_times_seconds":
                                 [b + d / 1000 for b, d in zip(begin, durations, strict=True)]}
                elapsed += len(audio) / 2 / rate
                payload = pcm_to_mulaw(audio) if ulaw else audio
                yield (json.dumps({"audio_base64": base64.b64encode(payload).decode(),
                                   "alignment": alignment,
                                   "normalized_alignment": alignment}) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/json")


async def _send(ws: WebSocket, message: dict[str, Any]) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        await ws.send_text(json.dumps(message))


async def _reject(ws: WebSocket, conn: ElevenLabsConnection, reason: str) -> None:
    conn.rejected = reason
    await ws.close(1008, reason)


def _invalid_key() -> JSONResponse:
    return JSONResponse({"detail": {"status": "invalid_api_key", "message": "Invalid API key"}},
                        status_code=401)
