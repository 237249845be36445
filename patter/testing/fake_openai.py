"""A loopback fake of the OpenAI HTTP API: chat completions, speech and transcriptions.

Point any OpenAI client (or Pipecat's OpenAI services) at ``fake.base_url``::

    async with FakeOpenAI(api_key="sk-test") as fake:
        fake.reply_with("Hello there!")
        fake.call_tool("get_weather", {"city": "Paris"})
        llm = OpenAILLMService(api_key="sk-test", base_url=fake.base_url, ...)
"""

from __future__ import annotations

import asyncio
import io
import json
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from patter.testing._fake_base import CutStream, FakeService, public_headers
from patter.testing._openai_wire import (
    Reply,
    ToolCall,
    completion,
    completion_chunks,
    error_response,
    fault_error,
    parse_multipart,
    sse,
    token_usage,
    transcription_response,
    wav_bytes,
)
from patter.testing.audio import synthesize_speech
from patter.testing.faults import CUT, HANG, HTTP, Fault, supports

#: Sample rate of OpenAI's ``pcm`` speech output.
OPENAI_TTS_RATE_HZ = 24000

#: A custom responder: ``(messages, tools) -> Reply`` (a plain ``str`` is taken as text).
Responder = Callable[[list[dict[str, Any]], list[dict[str, Any]]], "Reply | str"]


@dataclass
class RecordedRequest:
    """One HTTP request the fake received (credential headers removed)."""

    method: str
    path: str
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    client_port: int = 0
    """The client's TCP port: requests with the same port came over the same connection."""


@dataclass
class AudioUpload:
    """Audio uploaded for transcription, decoded from its WAV container."""

    pcm: bytes
    sample_rate_hz: int
    fields: dict[str, str] = field(default_factory=dict)


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
    return ""


def echo_responder(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
    """Default responder: ``"You said: <last user message>"``, or a fixed greeting."""
    for message in reversed(messages):
        if message.get("role") == "user" and message_text(message):
            return Reply(text=f"You said: {message_text(message)}")
    return Reply(text="Hello! How can I help you?")


class FakeOpenAI(FakeService):
    """Fake of OpenAI's ``/v1/chat/completions``, ``/v1/audio/speech``,
    ``/v1/audio/transcriptions`` and ``/v1/models`` (the key check ``patter doctor`` makes).

    Scripting:
      * ``reply_with(text)`` / ``call_tool(name, args)`` queue chat replies, used in
        order; with the queue empty ``responder(messages, tools)`` answers (by default
        :func:`echo_responder`).
      * ``transcripts``: texts the transcription endpoint returns, one per upload,
        in order ("" once empty); or set ``transcriber = f(pcm, sample_rate) -> str``.
      * ``chat_delay_s``, ``tts_delay_s``, ``transcribe_delay_s``: latency before answering.

    Faults (``fake.faults.add(kind, fault)``, see :mod:`patter.testing.faults`): ``"chat"``
    and ``"speech"`` take ``http``, ``hang`` and ``cut`` faults (the SSE stream or the audio
    stream ends abruptly after its first chunk); ``"transcription"`` takes ``http`` and
    ``hang``. HTTP faults answer in OpenAI's error shape (429: ``rate_limit_exceeded``).

    Recording: ``requests`` (every request), ``chat_requests`` (chat bodies),
    ``spoken`` (texts synthesised), ``transcribed_audio`` (:class:`AudioUpload` list).
    Requests without ``Authorization: Bearer <api_key>`` get OpenAI's 401 error.
    """

    def __init__(self, api_key: str = "sk-test") -> None:
        self.api_key = api_key
        self.replies: list[Reply] = []
        self.responder: Responder = echo_responder
        self.transcripts: list[str] = []
        self.transcriber: Callable[[bytes, int], str] | None = None
        self.chat_delay_s = 0.0
        self.tts_delay_s = 0.0
        self.transcribe_delay_s = 0.0
        self.requests: list[RecordedRequest] = []
        self.spoken: list[str] = []
        self.transcribed_audio: list[AudioUpload] = []
        super().__init__(self._build_app(), {
            **supports("chat", "speech", faults=(HTTP, HANG, CUT)),
            **supports("transcription", faults=(HTTP, HANG)),
        })

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``base_url`` OpenAI clients take."""
        return f"{self.http_url}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests received (``messages``, ``tools``, ...)."""
        return [r.json for r in self.requests if r.path.endswith("/chat/completions") and r.json]

    def reply_with(self, text: str) -> None:
        """Queue a plain text answer for the next chat completion."""
        self.replies.append(Reply(text=text))

    def call_tool(self, name: str, arguments: dict[str, Any] | str | None = None,
                  *, call_id: str | None = None, say: str = "") -> ToolCall:
        """Queue a chat completion answer that calls tool ``name`` with ``arguments``.

        ``say`` is text streamed before the tool call in the same answer, as models do
        ("Transferring you now." then ``transfer_call``).
        """
        call = ToolCall(name=name, arguments=arguments if arguments is not None else {})
        if call_id:
            call.id = call_id
        self.replies.append(Reply(text=say, tool_calls=[call]))
        return call

    def _next_reply(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        if self.replies:
            return self.replies.pop(0)
        reply = self.responder(messages, tools)
        return Reply(text=reply) if isinstance(reply, str) else reply

    async def _record(self, request: Request, *, json_body: Any = None,
                      form: dict[str, str] | None = None) -> None:
        self.requests.append(RecordedRequest(
            method=request.method, path=request.url.path, json=json_body,
            form=form or {}, headers=public_headers(request.headers.items()),
            client_port=request.client.port if request.client else 0,
        ))
        await self._changed()

    def _auth_error(self, request: Request) -> JSONResponse | None:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer ") or not auth[7:].strip():
            return error_response(401, "You didn't provide an API key. You need to provide "
                                  "your API key in an Authorization header using Bearer auth.")
        key = auth[7:].strip()
        if key != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:]
            return error_response(401, f"Incorrect API key provided: {masked}.", "invalid_api_key")
        return None

    async def _error_fault(self, fault: Fault | None) -> Response | None:
        """The answer of an ``http`` or ``hang`` fault; None for no fault or a ``cut``."""
        if fault is None or fault.kind == CUT:
            return None
        if fault.kind == HANG:
            await self.faults.hang()
            return fault_error(503)
        return fault_error(fault.status, fault.headers())

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        app.post("/v1/chat/completions")(self._chat)
        app.post("/v1/audio/speech")(self._speech)
        app.post("/v1/audio/transcriptions")(self._transcriptions)
        app.get("/v1/models")(self._models)
        app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])(self._unknown)
        return app

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        models = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "system"}
                  for name in ("gpt-4o-mini", "gpt-4o-mini-transcribe", "gpt-4o-mini-tts")]
        return self._auth_error(request) or JSONResponse({"object": "list", "data": models})

    async def _unknown(self, request: Request, path: str) -> Response:
        await self._record(request)
        unknown = error_response(404, f"Unknown path /{path} (FakeOpenAI)")
        return self._auth_error(request) or unknown

    async def _chat(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        await self._record(request, json_body=body)
        if denied := self._auth_error(request):
            return denied
        fault = await self._take_fault("chat")
        if failed := await self._error_fault(fault):
            return failed  # the scripted reply stays queued for the next request
        messages = body.get("messages") or []
        reply = self._next_reply(messages, body.get("tools") or [])
        model = body.get("model", "gpt-4.1")
        prompt_tokens = sum(len(message_text(m).split()) + 4 for m in messages)
        usage = token_usage(prompt_tokens, len(reply.text.split()) + 8 * len(reply.tool_calls))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = completion_chunks(reply, model, usage if include_usage else None)
        if fault is not None:  # a cut: the reply is used up, only its start is sent
            return CutStream(sse(chunks), media_type="text/event-stream")
        if self.chat_delay_s:
            await asyncio.sleep(self.chat_delay_s)
        if not body.get("stream"):
            return JSONResponse(completion(reply, model, usage))
        return StreamingResponse(sse(chunks), media_type="text/event-stream")

    async def _speech(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        await self._record(request, json_body=body)
        if denied := self._auth_error(request):
            return denied
        fault = await self._take_fault("speech")
        if failed := await self._error_fault(fault):
            return failed
        text = body.get("input") or ""
        fmt = body.get("response_format", "mp3")
        if fmt not in ("pcm", "wav"):
            return error_response(400, f"FakeOpenAI speaks only pcm and wav, not {fmt!r}",
                                  "unsupported_format")
        pcm = await asyncio.to_thread(synthesize_speech, text, sample_rate_hz=OPENAI_TTS_RATE_HZ)
        self.spoken.append(text)
        await self._changed()
        if fmt == "wav":
            pcm = wav_bytes(pcm, OPENAI_TTS_RATE_HZ)

        async def stream() -> AsyncIterator[bytes]:
            if self.tts_delay_s:
                await asyncio.sleep(self.tts_delay_s)
            step = OPENAI_TTS_RATE_HZ // 10 * 2  # 100 ms of audio per chunk
            for start in range(0, len(pcm), step):
                yield pcm[start:start + step]

        media = "audio/pcm" if fmt == "pcm" else "audio/wav"
        if fault is not None:
            return CutStream(stream(), media_type=media)
        return StreamingResponse(stream(), media_type=media)

    async def _transcriptions(self, request: Request) -> Response:
        fields, files = parse_multipart(request.headers.get("content-type", ""),
                                         await request.body())
        upload = files.get("file")
        recorded = dict(fields)
        if upload is not None:
            recorded["file"] = f"<{len(upload)} bytes>"
        await self._record(request, form=recorded)
        if denied := self._auth_error(request):
            return denied
        if failed := await self._error_fault(await self._take_fault("transcription")):
            return failed
        if upload is None:
            return error_response(400, "Missing required parameter: 'file'.")
        try:
            with wave.open(io.BytesIO(upload), "rb") as wav:
                pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
        except (wave.Error, EOFError):
            return error_response(400, "Invalid file format. FakeOpenAI accepts 16-bit WAV only.")
        self.transcribed_audio.append(AudioUpload(pcm=pcm, sample_rate_hz=rate, fields=fields))
        if self.transcriber is not None:
            text = self.transcriber(pcm, rate)
        else:
            text = self.transcripts.pop(0) if self.transcripts else ""
        await self._changed()
        if self.transcribe_delay_s:
            await asyncio.sleep(self.transcribe_delay_s)
        duration = len(pcm) / 2 / rate if rate else 0.0
        return transcription_response(text, duration, fields)


