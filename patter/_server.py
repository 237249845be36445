"""The HTTP/WebSocket server Twilio talks to: signed webhooks and per-call media streams.

Routes::

    POST /twilio/voice       voice webhook → TwiML <Connect><Stream> with a per-call token
    POST /twilio/status      call status callbacks (outbound calls)
    POST /twilio/amd         asynchronous answering-machine-detection results
    POST /twilio/recording   recording status callbacks
    WS   /twilio/media       the Media Stream; the token is checked on `start`
    GET  /patter/hold-music.wav   the bundled hold music

Each call's state lives in its ``CallEntry`` (``patter._calls``), which every route looks
up by CallSid in the server's ``CallRegistry``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response, WebSocket

from patter._agent import Agent
from patter._callbacks import Callbacks
from patter._calls import CallEntry, CallRegistry, InMemoryCallRegistry
from patter._hold_music import hold_music_wav
from patter._log import call_sid_var, get_logger
from patter._prewarm import KitShelf
from patter._recording import Recorder
from patter._security import InvalidMediaToken, MediaTokens, WebhookVerifier
from patter._session import CallInfo, CallOptions, CallPhase, CallSession
from patter._twiml import busy_twiml, hangup_twiml, stream_twiml
from patter._vendors import VendorKeys
from patter._webhook import WebhookRejected, read_signed_form, require_call_fields
from patter.processors.response_guard import RecoveryLines
from patter.transports.media_stream import MAX_MESSAGE_BYTES, MediaStreamSocket, StreamRejected
from patter.transports.twilio_rest import TwilioRest

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


FormHandler = Callable[[dict[str, str]], Awaitable[None]]


class PatterServer:
    """Builds the FastAPI app and answers Twilio for the calls in its registry.

    ``registry`` defaults to one in this process's memory.
    """

    def __init__(
        self,
        config: ServerConfig,
        *,
        rest: TwilioRest,
        verifier: WebhookVerifier,
        tokens: MediaTokens,
        disclosure_audio: Callable[[Agent], Awaitable[bytes]],
        recovery_lines: Callable[[Agent], Awaitable[RecoveryLines]] | None = None,
        registry: CallRegistry | None = None,
    ) -> None:
        self.config = config
        self.rest = rest
        self.verifier = verifier
        self.tokens = tokens
        self._disclosure_audio = disclosure_audio
        self._recovery_lines = recovery_lines  # None: the agent has no voice to apologise in
        self.registry: CallRegistry = registry or InMemoryCallRegistry()
        self.recorder = Recorder(rest, self.url(RECORDING_PATH))
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
        app.add_api_route(STATUS_PATH, self._form_route(self._status), methods=["POST"])
        app.add_api_route(AMD_PATH, self._form_route(self._amd), methods=["POST"])
        app.add_api_route(RECORDING_PATH, self._form_route(self._recording), methods=["POST"])
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
        entry = await self.registry.get(call_sid)
        if entry is not None and entry.streaming:
            logger.warning(
                "voice webhook for a call already streaming", extra={"call_sid": call_sid}
            )
            return Response(hangup_twiml(), media_type=XML)
        answered = entry is not None and entry.answered_at is not None
        if not answered and await self._calls_in_progress() >= self.config.max_calls:
            logger.warning("over max_calls: answering busy", extra={"call_sid": call_sid})
            return Response(busy_twiml(), media_type=XML)
        caller, callee = form.get("From", ""), form.get("To", "")
        if entry is None:
            entry = await self.registry.add(
                self._new_entry(call_sid, caller, callee, "outbound" if outbound else "inbound")
            )
        entry.answered()
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

    def _form_route(self, handler: FormHandler) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            try:
                form = await read_signed_form(request, self.verifier)
                require_call_fields(form, numbers=False)
            except WebhookRejected as exc:
                return _reject(exc, request)
            await handler(form)
            return Response(status_code=204)

        return route

    async def _status(self, form: dict[str, str]) -> None:
        """A status callback: a placed call that ends without a stream is ended here."""
        entry = await self.registry.get(form["CallSid"])
        if entry is None or not entry.placed or entry.ended:
            return
        final = entry.status_reported(form.get("CallStatus", "")[:20])
        if final and not entry.streaming:  # no session will end this call
            await self.registry.remove(entry.call_sid)
            await entry.end_unconnected(entry.status)

    async def _amd(self, form: dict[str, str]) -> None:
        """An asynchronous AMD verdict for a placed call."""
        entry = await self.registry.get(form["CallSid"])
        if entry is not None and entry.placed:
            entry.verdict_reported(form.get("AnsweredBy", "unknown")[:40])

    async def _recording(self, form: dict[str, str]) -> None:
        """A recording status callback; an ended call is forgotten after its final one."""
        entry = await self.registry.get(form["CallSid"])
        if entry is None:
            logger.info("recording callback for an unknown call")
            return
        await self.recorder.on_status(entry, form)
        if entry.ended and not entry.awaiting_recording:
            await self.registry.remove(entry.call_sid)

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
        entry = await self.registry.get(start.call_sid)
        if entry is None:  # e.g. answered by another instance, or its token outlived it here
            params = start.custom_parameters
            entry = await self.registry.add(
                self._new_entry(
                    start.call_sid,
                    params.get("from", ""),
                    params.get("to", ""),
                    params.get("direction", "inbound"),
                )
            )
        if not await self.registry.claim_stream(entry.call_sid):
            logger.warning(
                "second media stream for a call refused", extra={"call_sid": entry.call_sid}
            )
            await socket.close(POLICY_VIOLATION)
            return
        socket.stream_sid = start.stream_sid
        try:
            await self._run_call(entry, socket)
        finally:
            if entry.session is None:  # its session could not start: the end is reported here
                await entry.end_unconnected("error")
            if not (entry.ended and entry.awaiting_recording):
                await self.registry.remove(entry.call_sid)

    async def _run_call(self, entry: CallEntry, socket: MediaStreamSocket) -> None:
        disclosure_audio = await self._disclosure_audio(entry.agent)
        recovery_lines = (await self._recovery_lines(entry.agent)
                          if self._recovery_lines is not None else None)
        kit = await self.kits.take(entry.agent)
        session = CallSession(
            entry=entry,
            keys=self.config.keys,
            socket=socket,
            rest=self.rest,
            disclosure_audio=disclosure_audio,
            recovery_lines=recovery_lines,
        )
        # No await from here to run(): a verdict acted on at attach finds the chain built.
        entry.attach(session)
        if entry.options.record:
            self.recorder.start(entry, session)
        await session.run(kit)

    def _new_entry(self, call_sid: str, caller: str, callee: str, direction: str) -> CallEntry:
        """The entry of a call this server did not place: ``serve()``'s agent and callbacks."""
        return CallEntry(
            info=CallInfo(call_sid, caller, callee, direction),
            agent=self.config.agent,
            callbacks=self.config.callbacks,
            options=self.default_options(),
        )

    def default_options(self) -> CallOptions:
        """Call options for a call with no per-call override."""
        return CallOptions(
            hold_music_url=self.url(HOLD_MUSIC_PATH),
            caller_id=self.config.phone_number,
            max_duration_s=self.config.max_duration_s,
            record=self.config.recording,
        )

    async def _calls_in_progress(self) -> int:
        """Streaming calls plus answered ones whose token is still valid (stale answered
        calls this server did not place are dropped; placed ones end on their status)."""
        stale_before = time.monotonic() - self.tokens.ttl_s
        count = 0
        for entry in await self.registry.entries():
            if entry.ended:
                continue
            if entry.streaming:
                count += 1
            elif entry.answered_at is None:
                continue  # placed, not answered yet
            elif entry.answered_at >= stale_before:
                count += 1
            elif not entry.placed:
                await self.registry.remove(entry.call_sid)
        return count

    async def end_all_calls(self, timeout_s: float = 5.0) -> None:
        """Hang up every live call (graceful shutdown)."""
        entries = await self.registry.entries()
        sessions = [
            e.session for e in entries
            if e.session is not None and e.session.phase is not CallPhase.ENDED
        ]
        await asyncio.gather(*(s.hang_up("shutdown") for s in sessions), return_exceptions=True)


def _reject(exc: WebhookRejected, request: Request) -> Response:
    details = {"status": exc.status, "reason": str(exc), "path": request.url.path}
    logger.warning("webhook rejected", extra=details)
    return Response(status_code=exc.status)
