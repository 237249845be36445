"""A small signature-checking voice application and the fake Twilio around it, shared by the
tests of ``FakeTwilio`` against the real ``twilio`` SDK."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from patter.testing import FakeTwilio
from patter.testing._server import LoopbackServer

OUR_NUMBER = "+15550001234"
CALLER = "+15557654321"
PUBLIC = "https://agent.example.com"
STREAM_TWIML = (
    '<Response><Connect><Stream url="wss://agent.example.com/media">'
    '<Parameter name="token" value="per-call-secret"/></Stream></Connect>'
    "<Say>Goodbye</Say><Hangup/></Response>"
)


class Stream:
    """The application's side of one media stream."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.done = asyncio.Event()
        self._change = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                self.messages.append(json.loads(await self.ws.receive_text()))
                self._change.set()
                self._change = asyncio.Event()
        except WebSocketDisconnect:
            self.done.set()
            self._change.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == event]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                await self._change.wait()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(message))


class VoiceApp:
    """A voice application as a Patter user deploys it: every request's signature is checked."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.twiml = {"voice": STREAM_TWIML, "twiml": STREAM_TWIML}
        self.hooks: dict[str, list[tuple[dict[str, str], bool]]] = {}
        self.stream_signature_ok: list[bool] = []
        self.streams: asyncio.Queue[Stream] = asyncio.Queue()
        self.app = FastAPI()

        @self.app.api_route("/{hook}", methods=["GET", "POST"])
        async def hook(hook: str, request: Request) -> Response:
            signature = request.headers.get("x-twilio-signature", "")
            if request.method == "GET":
                params = dict(request.query_params)
                valid = self.validator.validate(f"{PUBLIC}/{hook}?{request.url.query}", {},
                                                signature)
            else:
                params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
                valid = self.validator.validate(f"{PUBLIC}/{hook}", params, signature)
            self.hooks.setdefault(hook, []).append((params, valid))
            if not valid:
                return Response(status_code=403)
            if hook in self.twiml:
                return Response(self.twiml[hook], media_type="application/xml")
            return Response(status_code=204)

        @self.app.websocket("/media")
        async def media(ws: WebSocket) -> None:
            signature = ws.headers.get("x-twilio-signature", "")
            self.stream_signature_ok.append(
                self.validator.validate("wss://agent.example.com/media", {}, signature)
            )
            await ws.accept()
            stream = Stream(ws)
            await self.streams.put(stream)
            await stream.run()

    async def next_stream(self) -> Stream:
        return await asyncio.wait_for(self.streams.get(), timeout=10)


@dataclass
class World:
    fake: FakeTwilio
    app: VoiceApp
    client: Client

    async def sdk(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call off the event loop the fakes run on."""
        return await asyncio.to_thread(fn, *args, **kwargs)


@asynccontextmanager
async def open_world() -> AsyncIterator[World]:
    """A fake Twilio with our number pointed at a fresh ``VoiceApp``, and an SDK client."""
    async with FakeTwilio(numbers=[OUR_NUMBER]) as fake:
        app = VoiceApp(fake.auth_token)
        async with LoopbackServer(app.app) as server:
            fake.route(PUBLIC, server.url)
            client = Client(fake.account_sid, fake.auth_token)
            client.api.base_url = fake.base_url
            fake.numbers[OUR_NUMBER].voice_url = f"{PUBLIC}/voice"
            yield World(fake, app, client)
