"""The HTTP/WebSocket server Twilio talks to: signed webhooks and per-call media streams.

Routes::

    POST /twilio/voice       voice webhook → TwiML <Connect><Stream> with a per-call token
    POST /twilio/status      call status callbacks (outbound calls)
    POST /twilio/amd         asynchronous answering-machine-detection results
    POST /twilio/recording   recording status callbacks
    WS   /twilio/media       the Media Stream; the token is checked on `start`
    GET  /patter/hold-music.wav   the bundled hold music
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response, WebSocket

from patter._callbacks import Callbacks
from patter._hold_music import hold_music_wav
from patter._log import call_sid_var, get_logger
from patter._prewarm import KitShelf
from patter._twiml import busy_twiml, hangup_twiml, stream_twiml
from patter._webhook import WebhookRejected, read_signed_form, require_call_fields
from patter.agent import Agent
from patter.recording import Recorder
from patter.security import InvalidMediaToken, MediaTokens, WebhookVerifier
from patter.session import CallInfo, CallOptions, CallSession
from patter.transports.media_stream import MAX_MESSAGE_BYTES, MediaStreamSocket, StreamRejected
from patter.transports.twilio_rest import TwilioRest
from patter.vendors import VendorKeys

logger = get_logger(__name__)

VOICE_PATH = "/twilio/voice"
STATUS_PATH = "/twilio/status"
AMD_PATH = "/twilio/amd"
RECORDING_PATH = "/twilio/recording"
MEDIA_PATH = "/twilio/media"
HOLD_MUSIC_PATH = "/patter/hold-music.wav"
XML = "application/xml"
POLICY_VIOLATION = 1008


@dataclass
class ServerConfig:
    """Everything the server needs that does not change while it runs."""

    public_url: str
    phone_number: str
    agent: Agent
    keys: VendorKeys
    callbacks: Callbacks
    max_calls: int
    max_duration_s: float | None
    recording: bool = False
    voicemail_message: str = ""
    start_timeout_s: float = 5.0
    max_message_bytes: int = MAX_MESSAGE_BYTES


@dataclass
class LiveCall:
    """A call this server has answered, from voice webhook to the end of its stream."""

    call_sid: str
    caller: str
    callee: str
    direction: str
    session: CallSession | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    streaming: bool = False
    """True from the moment a media stream with a valid token claims the call."""
    answered_at: float = field(default_factory=time.monotonic)


SessionHook = Callable[[LiveCall, CallSession], Awaitable[None]]
FormHook = Callable[[dict[str, str]], Awaitable[None]]


class PatterServer:
    """Builds the FastAPI app and owns the live calls of one ``serve()``."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        rest: TwilioRest,
        verifier: WebhookVerifier,
        tokens: MediaTokens,
        disclosure_audio: Callable[[Agent], Awaitable[bytes]],
    ) -> None:
        self.config = config
        self.rest = rest
        self.verifier = verifier
        self.tokens = tokens
        self._disclosure_audio = disclosure_audio
        self.calls: dict[str, LiveCall] = {}
        self.on_session: SessionHook | None = None
        self.on_status: FormHook | None = None
        self.on_amd: FormHook | None = None
        self.recorder = Recorder(rest, self.url(RECORDING_PATH))
        self.call_overrides: dict[str, tuple[Agent, Callbacks, CallOptions]] = {}
        self.kits = KitShelf(config.keys)
        self.app = self._build_app()

    @property
    def media_url(self) -> str:
        """wss:// (or ws:// for an http:// webhook_url) URL of the media WebSocket."""
        parts = urlsplit(self.config.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{MEDIA_PATH}"

    def url(self, path: str) -> str:
        """Public URL of one of this server's routes."""
        return self.verifier.public_url(path)

    def _build_app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route(VOICE_PATH, self._voice, methods=["POST"])
        app.add_api_route(
            STATUS_PATH, self._make_form_route(lambda: self.on_status), methods=["POST"]
        )
        app.add_api_route(AMD_PATH, self._make_form_route(lambda: self.on_amd), methods=["POST"])
        app.add_api_route(
            RECORDING_PATH, self._make_form_route(lambda: self.recorder.on_status), methods=["POST"]
        )
        app.add_api_route(HOLD_MUSIC_PATH, self._hold_music, methods=["GET"])
        app.add_api_websocket_route(MEDIA_PATH, self._media)
        return app

    async def _voice(self, request: Request) -> Response:
        try:
            form = await read_signed_form(request, self.verifier)
            require_call_fields(form, numbers=True)
        except WebhookRejected as exc:
            return _reject(exc, request)
        call_sid = form["CallSid"]
        call_sid_var.set(call_sid)
        outbound = form.get("Direction", "inbound").startswith("outbound")
        if call_sid in self.calls and self.calls[call_sid].streaming:
            logger.warning(
                "voice webhook for a call already streaming", extra={"call_sid": call_sid}
            )
            return Response(hangup_twiml(), media_type=XML)
        if call_sid not in self.calls and self._calls_in_progress() >= self.config.max_calls:
            logger.warning("over max_calls: answering busy", extra={"call_sid": call_sid})
            return Response(busy_twiml(), media_type=XML)
        caller, callee = form.get("From", ""), form.get("To", "")
        self.calls.setdefault(
            call_sid,
            LiveCall(call_sid, caller, callee, "outbound" if outbound else "inbound"),
        )
        token = self.tokens.issue(call_sid)
        twiml = stream_twiml(
            self.media_url,
            {
                "token": token,
                "from": caller,
                "to": callee,
                "direction": "outbound" if outbound else "inbound",
            },
        )
        return Response(twiml, media_type=XML)

    def _make_form_route(
        self, hook: Callable[[], FormHook | None]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                form = await read_signed_form(request, self.verifier)
                require_call_fields(form, numbers=False)
            except WebhookRejected as exc:
                return _reject(exc, request)
            handler = hook()
            if handler is not None:
                await handler(form)
            return Response(status_code=204)

        return route

    async def _hold_music(self) -> Response:
        return Response(hold_music_wav(), media_type="audio/wav")

    async def _media(self, websocket: WebSocket) -> None:
        await websocket.accept()
        socket = MediaStreamSocket(websocket, max_message_bytes=self.config.max_message_bytes)
        claimed = "-"
        try:
            start = await socket.read_start(self.config.start_timeout_s)
            claimed = start.call_sid
            self.tokens.redeem(start.custom_parameters.get("token"), start.call_sid)
        except (StreamRejected, InvalidMediaToken) as exc:
            logger.warning("media stream refused", extra={"reason": str(exc), "call_sid": claimed})
            await socket.close(POLICY_VIOLATION)
            return
        live = self.calls.get(start.call_sid)
        if live is not None and live.streaming:
            logger.warning(
                "second media stream for a call refused", extra={"call_sid": live.call_sid}
            )
            await socket.close(POLICY_VIOLATION)
            return
        if live is None:
            params = start.custom_parameters
            live = LiveCall(
                start.call_sid,
                params.get("from", ""),
                params.get("to", ""),
                params.get("direction", "inbound"),
            )
            self.calls[start.call_sid] = live
        live.streaming = True  # claimed before any await: a concurrent second stream is refused
        socket.stream_sid = start.stream_sid
        try:
            await self._run_call(live, socket)
        finally:
            self.calls.pop(live.call_sid, None)

    async def _run_call(self, live: LiveCall, socket: MediaStreamSocket) -> None:
        agent, callbacks, options = self.call_overrides.pop(
            live.call_sid,
            (self.config.agent, self.config.callbacks, self.default_options()),
        )
        session = CallSession(
            info=CallInfo(live.call_sid, live.caller, live.callee, live.direction),
            agent=agent,
            keys=self.config.keys,
            socket=socket,
            rest=self.rest,
            callbacks=callbacks,
            disclosure_audio=await self._disclosure_audio(agent),
            options=options,
        )
        live.session = session
        if options.record:
            self.recorder.start(session, callbacks)
        kit = await self.kits.take(agent)
        if self.on_session is not None:
            await self.on_session(live, session)
        await session.run(kit)

    def default_options(self) -> CallOptions:
        """Call options for a call with no per-call override."""
        return CallOptions(
            hold_music_url=self.url(HOLD_MUSIC_PATH),
            caller_id=self.config.phone_number,
            max_duration_s=self.config.max_duration_s,
            record=self.config.recording,
        )

    def _calls_in_progress(self) -> int:
        """Streaming calls plus answered ones whose token is still valid (stale ones dropped)."""
        stale_before = time.monotonic() - self.tokens.ttl_s
        for sid, call in list(self.calls.items()):
            if not call.streaming and call.answered_at < stale_before:
                del self.calls[sid]
        return len(self.calls)

    async def end_all_calls(self, timeout_s: float = 5.0) -> None:
        """Hang up every live call (graceful shutdown)."""
        sessions = [c.session for c in self.calls.values() if c.session is not None]
        await asyncio.gather(*(s.hang_up("shutdown") for s in sessions), return_exceptions=True)


def _reject(exc: WebhookRejected, request: Request) -> Response:
    details = {"status": exc.status, "reason": str(exc), "path": request.url.path}
    logger.warning("webhook rejected", extra=details)
    return Response(status_code=exc.status)
