"""The HTTP/WebSocket server Twilio talks to: signed webhooks and per-call media streams.

Routes::

    POST /twilio/voice       voice webhook → TwiML <Connect><Stream> with a per-call token
    POST /twilio/status      call status callbacks (outbound calls)
    POST /twilio/amd         asynchronous answering-machine-detection results
    POST /twilio/recording   recording status callbacks
    WS   /twilio/media/{instance_id}   the Media Stream; the token is checked on `start`
    GET  /patter/hold-music.wav   the bundled hold music
    GET  /healthz            200 while the process is alive (for a balancer or orchestrator)
    GET  /readyz             200 while it takes calls; 503 while draining or at max_calls

Each call's state lives in its ``CallEntry`` (``patter._calls``), which every route looks
up by CallSid in the server's ``CallRegistry``. The media URL names the instance that
answered, so a balancer in front of several instances routes the stream back to it
(docs/scaling.md). With a ``Cluster`` (Redis), the cap on calls
and the single use of media tokens hold for every instance, and a callback for a call held
by another instance is forwarded to it (``patter._cluster``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response, WebSocket

from patter._agent import Agent
from patter._call_memory import CallMemory
from patter._call_state import CallInfo, CallOptions, CallPhase
from patter._callback_routes import CallbackRoutes
from patter._callbacks import Callbacks
from patter._calls import CallEntry, CallRegistry, InMemoryCallRegistry
from patter._cluster import Cluster
from patter._cluster_registry import ClusterCallRegistry
from patter._hold_music import hold_music_wav
from patter._log import call_sid_var, get_logger
from patter._prewarm import KitShelf
from patter._recording import Recorder
from patter._redis_link import RedisUnavailable
from patter._security import InvalidMediaToken, MediaTokens, WebhookVerifier
from patter._session import CallSession
from patter._twiml import busy_twiml, hangup_twiml, stream_twiml
from patter._vendors import VendorKeys
from patter._webhook import WebhookRejected, read_signed_form, rejected, require_call_fields
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
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
BALANCER_HEADER = "x-patter-balancer"
"""Set to ``retries`` by a balancer that retries a 503 on another instance (deploy/haproxy.cfg):
a draining instance then answers a new call's voice webhook 503, not busy TwiML."""
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
    instance_id: str = "patter"
    recording: bool = False
    voicemail_message: str = ""
    start_timeout_s: float = 5.0
    max_message_bytes: int = MAX_MESSAGE_BYTES


class PatterServer:
    """Builds the FastAPI app and answers Twilio for the calls in its registry.

    ``registry`` defaults to one in this process's memory, or with a ``cluster`` to one
    that records in Redis which instance holds each call.
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
        cluster: Cluster | None = None,
    ) -> None:
        self.config = config
        self.rest = rest
        self.verifier = verifier
        self.tokens = tokens
        self._disclosure_audio = disclosure_audio
        self._recovery_lines = recovery_lines  # None: the agent has no voice to apologise in
        self.cluster = cluster
        self.registry: CallRegistry = registry or (
            ClusterCallRegistry(cluster) if cluster is not None else InMemoryCallRegistry()
        )
        self.recorder = Recorder(rest, self.url(RECORDING_PATH))
        self._callbacks = CallbackRoutes(registry=self.registry, verifier=verifier,
                                         recorder=self.recorder, cluster=cluster)
        self.kits = KitShelf(config.keys)
        self.memory = CallMemory()
        self.draining = False
        self.app = self._build_app()

    @property
    def media_url(self) -> str:
        """wss:// (or ws:// for an http:// webhook_url) URL of this instance's media
        WebSocket; its last segment is this instance's id, which a balancer routes on."""
        return self.media_url_of(self.config.instance_id)

    def media_url_of(self, instance_id: str) -> str:
        """The media WebSocket URL of instance ``instance_id`` behind the same public URL."""
        parts = urlsplit(self.config.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        path = f"{parts.path.rstrip('/')}{MEDIA_PATH}/{instance_id}"
        return f"{scheme}://{parts.netloc}{path}"

    def url(self, path: str) -> str:
        """Public URL of one of this server's routes."""
        return self.verifier.public_url(path)

    def _build_app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        app.add_api_route(VOICE_PATH, self._voice, methods=["POST"])
        app.add_api_route(STATUS_PATH, self._callbacks.route("status"), methods=["POST"])
        app.add_api_route(AMD_PATH, self._callbacks.route("amd"), methods=["POST"])
        app.add_api_route(RECORDING_PATH, self._callbacks.route("recording"), methods=["POST"])
        app.add_api_route(HOLD_MUSIC_PATH, self._hold_music, methods=["GET"])
        app.add_api_route(HEALTH_PATH, self._healthz, methods=["GET"])
        app.add_api_route(READY_PATH, self._readyz, methods=["GET"])
        app.add_api_websocket_route(MEDIA_PATH, self._media)
        app.add_api_websocket_route(MEDIA_PATH + "/{instance_id}", self._media)
        return app

    def start_draining(self) -> None:
        """Take no new call from now on (``/readyz`` fails); calls already answered go on."""
        self.draining = True

    async def _healthz(self) -> Response:
        return Response("ok\n", media_type="text/plain")

    async def _readyz(self) -> Response:
        if self.draining:
            return Response("draining\n", status_code=503, media_type="text/plain")
        try:
            in_progress = (await self.cluster.calls_in_progress() if self.cluster is not None
                           else await self._calls_in_progress())
        except RedisUnavailable:  # new calls would be answered busy: take none
            return Response("redis unreachable\n", status_code=503, media_type="text/plain")
        if in_progress >= self.config.max_calls:  # the cluster's total, with Redis
            return Response("full\n", status_code=503, media_type="text/plain")
        return Response("ready\n", media_type="text/plain")

    async def _voice(self, request: Request) -> Response:
        try:
            form = await read_signed_form(request, self.verifier)
            require_call_fields(form, numbers=True)
        except WebhookRejected as exc:
            return rejected(exc, request)
        call_sid = form["CallSid"]
        call_sid_var.set(call_sid)
        outbound = form.get("Direction", "inbound").startswith("outbound")
        entry = await self.registry.get(call_sid)
        elsewhere = None  # a call another instance holds (placed there): answered here,
        if entry is None and self.cluster is not None:  # its stream goes to the owner
            elsewhere = await self.cluster.lookup(call_sid)
            if elsewhere is not None and elsewhere.owner == self.cluster.instance_id:
                elsewhere = None  # a stale record of this instance's: the call is new here
        if (entry is not None and entry.streaming) or (elsewhere and elsewhere.streaming):
            logger.warning(
                "voice webhook for a call already streaming", extra={"call_sid": call_sid}
            )
            return Response(hangup_twiml(), media_type=XML)
        if entry is None and elsewhere is None and self.draining:  # a new call
            logger.info("draining: refusing a new call", extra={"call_sid": call_sid})
            if request.headers.get(BALANCER_HEADER) == "retries":
                return Response(status_code=503)  # the balancer tries another instance
            return Response(busy_twiml(), media_type=XML)
        answered = entry is not None and entry.answered_at is not None
        if not await self._admit(call_sid, answered=answered):
            return Response(busy_twiml(), media_type=XML)
        caller, callee = form.get("From", ""), form.get("To", "")
        if entry is None and elsewhere is None:
            entry = await self.registry.add(
                self._new_entry(call_sid, caller, callee, "outbound" if outbound else "inbound")
            )
        if entry is not None:
            entry.answered()
        token = self.tokens.issue(call_sid)
        twiml = stream_twiml(
            self.media_url_of(elsewhere.owner) if elsewhere is not None else self.media_url,
            {
                "token": token,
                "from": caller,
                "to": callee,
                "direction": "outbound" if outbound else "inbound",
            },
        )
        return Response(twiml, media_type=XML)

    async def _admit(self, call_sid: str, *, answered: bool) -> bool:
        """Whether a line is free for the call (an answered call has one); logs a refusal."""
        if self.cluster is not None:
            await self._calls_in_progress()  # drops answered calls whose stream never came
            return await self.cluster.admit(call_sid, self.config.max_calls)
        if answered or await self._calls_in_progress() < self.config.max_calls:
            return True
        logger.warning("over max_calls: answering busy", extra={"call_sid": call_sid})
        return False

    async def on_forwarded(self, kind: str, form: dict[str, str]) -> None:
        """A callback another instance forwarded: handled if the call is held here."""
        await self._callbacks.on_forwarded(kind, form)

    async def _hold_music(self) -> Response:
        return Response(hold_music_wav(), media_type="audio/wav")

    async def _media(self, websocket: WebSocket) -> None:
        await websocket.accept()
        socket = MediaStreamSocket(websocket, max_message_bytes=self.config.max_message_bytes)
        claimed = "-"
        try:
            start = await socket.read_start(self.config.start_timeout_s)
            claimed = start.call_sid
            nonce = self.tokens.redeem(start.custom_parameters.get("token"), start.call_sid)
            if self.cluster is not None:
                await self.cluster.spend_token(nonce)
        except (StreamRejected, InvalidMediaToken) as exc:
            logger.warning("media stream refused", extra={"reason": str(exc), "call_sid": claimed})
            await socket.close(POLICY_VIOLATION)
            return
        entry = await self.registry.get(start.call_sid)
        if entry is None and await self._streams_elsewhere(start.call_sid):
            logger.warning("media stream for a call streaming on another instance refused",
                           extra={"call_sid": start.call_sid})
            await socket.close(POLICY_VIOLATION)
            return
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
            if self.cluster is not None:
                await self.cluster.release(entry.call_sid)
            if not (entry.ended and entry.awaiting_recording):
                await self.registry.remove(entry.call_sid)
            self.memory.call_ended()

    async def _streams_elsewhere(self, call_sid: str) -> bool:
        if self.cluster is None:
            return False
        record = await self.cluster.lookup(call_sid)
        return record is not None and record.streaming and record.owner != self.cluster.instance_id

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
        return len(await self.live_calls())

    async def live_calls(self) -> list[CallEntry]:
        """Streaming calls plus answered ones whose token is still valid (stale answered
        calls this server did not place are dropped; placed ones end on their status)."""
        stale_before = time.monotonic() - self.tokens.ttl_s
        live: list[CallEntry] = []
        for entry in await self.registry.entries():
            if entry.ended:
                continue
            if entry.streaming:
                live.append(entry)
            elif entry.answered_at is None:
                continue  # placed, not answered yet
            elif entry.answered_at >= stale_before:
                live.append(entry)
            elif not entry.placed:
                await self.registry.remove(entry.call_sid)
        return live

    async def end_all_calls(self, timeout_s: float = 5.0) -> None:
        """Hang up every live call (graceful shutdown) and wait, up to ``timeout_s``, for
        their ``on_call_end``."""
        live = [
            e for e in await self.registry.entries()
            if e.session is not None and e.session.phase is not CallPhase.ENDED
        ]
        await asyncio.gather(
            *(e.session.hang_up("shutdown") for e in live if e.session is not None),
            return_exceptions=True,
        )
        ends = [asyncio.ensure_future(e.wait_end()) for e in live]
        if ends:
            _, late = await asyncio.wait(ends, timeout=timeout_s)
            for end in late:
                end.cancel()

