"""OpenAI's HTTP API as :class:`~patter.testing.fake_openai.FakeOpenAI` speaks it: what the
fake LLM answers (:class:`Reply`, :class:`ToolCall`), chat completions whole and streamed as
server-sent events, transcription answers, error bodies, and multipart uploads read back."""

from __future__ import annotations

import io
import json
import re
import time
import uuid
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP as HTTP_POLICY
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response


@dataclass
class ToolCall:
    """One function call the fake LLM makes; ``arguments`` is a dict or a raw JSON string."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text the API sends."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass
class Reply:
    """What the fake LLM answers to one chat completion: text, tool calls, or both."""

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


def error_response(status: int, message: str, code: str | None = None,
                   type_: str = "invalid_request_error",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error body (``{"error": {message, type, param, code}}``) with ``status``."""
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def fault_error(status: int, headers: dict[str, str] | None = None) -> JSONResponse:
    """OpenAI's error body for an injected HTTP fault."""
    if status == 429:
        return error_response(429, "Rate limit reached for requests (FakeOpenAI fault).",
                              "rate_limit_exceeded", "requests", headers)
    if status >= 500:
        return error_response(status, "The server had an error while processing your "
                              "request (FakeOpenAI fault).", None, "server_error", headers)
    return error_response(status, f"FakeOpenAI fault: HTTP {status}", None, headers=headers)


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """Split a multipart/form-data body into (text fields, file fields) with the stdlib."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = BytesParser(policy=HTTP_POLICY).parsebytes(head + body)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):  # decode=True gives bytes for a non-multipart part
            payload = b""
        if part.get_filename() is not None:
            files[name] = payload
        elif name in fields:  # repeated fields such as include[]
            fields[name] += "," + payload.decode()
        else:
            fields[name] = payload.decode()
    return fields, files


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """16-bit mono ``pcm`` at ``rate`` in a WAV container."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buffer.getvalue()


def transcription_response(text: str, duration: float, fields: dict[str, str]) -> Response:
    """The transcription answer in the ``response_format`` (and ``include[]``) asked for."""
    fmt = fields.get("response_format", "json")
    if fmt in ("text", "srt", "vtt"):
        return PlainTextResponse(text)
    body: dict[str, Any] = {"text": text}
    if fmt == "verbose_json":
        body.update(task="transcribe", language=fields.get("language", "en"), duration=duration,
                    segments=[{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
                               "tokens": [], "temperature": 0.0, "avg_logprob": -0.1,
                               "compression_ratio": 1.0, "no_speech_prob": 0.01}])
    if "logprobs" in fields.get("include[]", fields.get("include", "")):
        body["logprobs"] = [{"token": w, "logprob": -0.01, "bytes": list(w.encode())}
                            for w in re.findall(r"\s*\S+", text)]
    return JSONResponse(body)


def token_usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """A chat completion's ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def completion(reply: Reply, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    """``reply`` as a whole (non-streamed) chat completion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None,
                               "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in reply.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
        "created": int(time.time()), "model": model, "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": usage,
    }


def completion_chunks(reply: Reply, model: str,
                       usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The streamed form of ``reply``: role, word-sized text deltas, tool-call pieces."""
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": chunk_id, "object": "chat.completion.chunk", "created": created,
            "model": model, "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            data["usage"] = None
        return data

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": piece}) for piece in re.findall(r"\s*\S+", reply.text)]
    for index, call in enumerate(reply.tool_calls):
        chunks.append(chunk({"tool_calls": [{
            "index": index, "id": call.id, "type": "function",
            "function": {"name": call.name, "arguments": ""}}]}))
        args = call.arguments_json
        for i in range(0, len(args), 8):  # arguments arrive in small pieces
            piece = {"index": index, "function": {"arguments": args[i:i + 8]}}
            chunks.append(chunk({"tool_calls": [piece]}))
    chunks.append(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
    if usage is not None:
        chunks.append({"id": chunk_id, "object": "chat.completion.chunk", "created": created,
                       "model": model, "system_fingerprint": "fp_fake", "choices": [],
                       "usage": usage})
    return chunks


async def sse(chunks: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """``chunks`` as server-sent events, ending with ``data: [DONE]``."""
    for data in chunks:
        yield f"data: {json.dumps(data)}\n\n".encode()
    yield b"data: [DONE]\n\n"
