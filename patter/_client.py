"""``Patter``: settings, ``agent()``, ``serve()`` and ``call()`` — the public entry point."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from patter import _validate
from patter._agent import DEFAULT_DISCLOSURE, DEFAULT_MODEL, Agent, Tool, build_agent
from patter._callbacks import Callback, Callbacks
from patter._canned_speech import CannedSpeech
from patter._cluster import Cluster
from patter._drain import StopSignals, drain
from patter._log import bridge_pipecat_logs, get_logger, mask_number, register_secret
from patter._outbound import OutboundCall, OutboundCalls
from patter._recovery import (
    DEFAULT_APOLOGY,
    DEFAULT_DIDNT_CATCH,
    DEFAULT_MAX_FAILED_TURNS,
    DEFAULT_RESPONSE_DEADLINE_S,
    build_recovery,
)
from patter._redis_link import RedisLink
from patter._security import MediaTokens, WebhookVerifier
from patter._server import STATUS_PATH, VOICE_PATH, PatterServer, ServerConfig
from patter._serving import ServerRunner
from patter._vendors import (
    LLM_VENDORS,
    STT_VENDORS,
    TTS_VENDORS,
    VendorKeys,
    check_choice,
    check_voice,
)
from patter.errors import PatterConfigError
from patter.processors.response_guard import RecoveryLines
from patter.transports.twilio_rest import TwilioRest

logger = get_logger(__name__)

DEFAULT_MAX_CALLS = 20
DEFAULT_MAX_CALL_DURATION_S = 3600.0
DEFAULT_DRAIN_TIMEOUT_S = 60.0


class Patter:
    """An AI voice agent on a Twilio phone number.

    Each of the first five settings and ``deepgram_key`` / ``elevenlabs_key`` that is not
    passed is read from the environment: the vendor's conventional variable first
    (``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``OPENAI_API_KEY``, ``DEEPGRAM_API_KEY``,
    ``ELEVENLABS_API_KEY``), then the spec's (``TWILIO_SID``, ``TWILIO_TOKEN``,
    ``OPENAI_KEY``, ``PHONE_NUMBER``, ``WEBHOOK_URL``). An argument passed always wins.

    Args:
        twilio_sid: Twilio Account SID (``AC…``).
        twilio_token: Twilio Auth Token (also the key that signs Twilio's webhooks).
        openai_key: OpenAI API key (STT, LLM and TTS by default).
        phone_number: Your Twilio number, E.164 (``+15550001234``).
        webhook_url: Public base URL of this server (e.g. an ngrok URL).
        deepgram_key / elevenlabs_key: Keys for ``stt="deepgram"`` / ``tts="elevenlabs"``.
        stt / tts / llm: Vendor name, or a factory: a zero-argument callable returning a
            new Pipecat service, called for each call (``tts=lambda: OpenAITTSService(...)``);
            defaults to OpenAI. Offline, with no key: ``stt="moonshine"``, ``tts="piper"``
            (extra ``patter[offline]``) and ``llm="rules"`` (see docs/offline.md). A list
            (``tts=["elevenlabs", "openai"]``, names or factories) is a fallback order: when
            a vendor fails, the next takes over for the rest of the call
            (docs/reliability.md).
        twilio_base_url / openai_base_url / deepgram_base_url / elevenlabs_base_url:
            Endpoint overrides (also read from ``TWILIO_BASE_URL``, ``OPENAI_BASE_URL``,
            ``DEEPGRAM_BASE_URL``, ``ELEVENLABS_BASE_URL``).
        server_secret: Key that signs per-call media tokens; share it between instances
            behind one number (``PATTER_SERVER_SECRET``). Generated at start if unset.
        instance_id: This instance's name among several behind one balancer
            (``PATTER_INSTANCE_ID``; default: the host name). It ends the media stream URL,
            so the balancer routes each stream to the instance that answered the call;
            give it as the balancer's server name (docs/scaling.md).
        redis_url: Redis shared by several instances behind one number
            (``PATTER_REDIS_URL``; ``redis://:password@host:6379/0``): the live calls, the
            cap on calls across instances, single-use media tokens, and callbacks routed
            to the instance holding the call (see "Scaling out" in the README). Without it
            one instance keeps all of this in memory.
    """

    def __init__(
        self,
        twilio_sid: str | None = None,
        twilio_token: str | None = None,
        openai_key: str | None = None,
        phone_number: str | None = None,
        webhook_url: str | None = None,
        *,
        deepgram_key: str | None = None,
        elevenlabs_key: str | None = None,
        stt: Any = None,
        tts: Any = None,
        llm: Any = None,
        twilio_base_url: str | None = None,
        openai_base_url: str | None = None,
        deepgram_base_url: str | None = None,
        elevenlabs_base_url: str | None = None,
        server_secret: str | None = None,
        instance_id: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        twilio_sid = _validate.from_env(twilio_sid, "twilio_sid")
        twilio_token = _validate.from_env(twilio_token, "twilio_token")
        openai_key = _validate.from_env(openai_key, "openai_key")
        phone_number = _validate.from_env(phone_number, "phone_number")
        webhook_url = _validate.from_env(webhook_url, "webhook_url")
        deepgram_key = _validate.from_env(deepgram_key, "deepgram_key")
        elevenlabs_key = _validate.from_env(elevenlabs_key, "elevenlabs_key")
        self.twilio_sid = _validate.account_sid(_validate.required(twilio_sid, "twilio_sid"))
        self._twilio_token = _validate.required(twilio_token, "twilio_token")
        self.phone_number = _validate.e164(
            _validate.required(phone_number, "phone_number"), "phone_number"
        )
        self.webhook_url = _validate.http_url(
            _validate.required(webhook_url, "webhook_url"), "webhook_url", allow_path_file=False
        )
        self.keys = VendorKeys(
            openai_key=openai_key or None,
            deepgram_key=deepgram_key or None,
            elevenlabs_key=elevenlabs_key or None,
            openai_base_url=_override(openai_base_url, "OPENAI_BASE_URL", "openai_base_url"),
            deepgram_base_url=_override(
                deepgram_base_url, "DEEPGRAM_BASE_URL", "deepgram_base_url", websocket=True
            ),
            elevenlabs_base_url=_override(
                elevenlabs_base_url, "ELEVENLABS_BASE_URL", "elevenlabs_base_url", websocket=True
            ),
        )
        self.twilio_base_url = _override(twilio_base_url, "TWILIO_BASE_URL", "twilio_base_url")
        check_choice(stt, "stt", STT_VENDORS, self.keys)
        check_choice(tts, "tts", TTS_VENDORS, self.keys)
        if llm is None and not self.keys.openai_key:
            raise PatterConfigError(
                f"openai_key is missing: pass Patter(openai_key=...) or set "
                f"{_validate.env_hint('openai_key')} (the LLM is OpenAI unless you pass "
                "llm='rules' or llm=<a factory returning a Pipecat LLM service>)."
            )
        check_choice(llm, "llm", LLM_VENDORS, self.keys)
        self.stt, self.tts, self.llm = stt, tts, llm
        self._server_secret = server_secret or os.environ.get("PATTER_SERVER_SECRET") or None
        self.instance_id = _validate.instance_id(
            instance_id or os.environ.get("PATTER_INSTANCE_ID") or _validate.default_instance_id()
        )
        redis_url = redis_url or os.environ.get("PATTER_REDIS_URL") or None
        self._redis_url = _validate.redis_url(redis_url) if redis_url else None
        for secret in (
            self._twilio_token,
            openai_key,
            deepgram_key,
            elevenlabs_key,
            self._server_secret,
        ):
            register_secret(secret)
        self._canned = CannedSpeech(self.keys)
        self._running: _Running | None = None
        self._serving = asyncio.Event()

    def __repr__(self) -> str:
        return (
            f"Patter(twilio_sid={self.twilio_sid[:6]}…, "
            f"phone_number={mask_number(self.phone_number)}, webhook_url={self.webhook_url!r})"
        )

    # ----- agent ----------------------------------------------------------------------

    def agent(
        self,
        system_prompt: str,
        voice: str = "nova",
        first_message: str = "",
        variables: Mapping[str, Any] | None = None,
        model: str = DEFAULT_MODEL,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        stt: Any = None,
        tts: Any = None,
        *,
        disclosure: str = DEFAULT_DISCLOSURE,
        transfer_allowlist: Sequence[str] | None = None,
        hold_music_url: str | None = None,
        customize_pipeline: Callable[[Any], None] | None = None,
        min_barge_in_s: float = 0.25,
        response_deadline_s: float = DEFAULT_RESPONSE_DEADLINE_S,
        apology: str = DEFAULT_APOLOGY,
        didnt_catch: str = DEFAULT_DIDNT_CATCH,
        goodbye: str | None = None,
        max_failed_turns: int = DEFAULT_MAX_FAILED_TURNS,
        fallback_number: str | None = None,
        speculative_replies: bool = False,
    ) -> Agent:
        """Describe the agent: prompt, voice, first message, ``{variables}``, tools, vendors.

        ``stt`` / ``tts`` override ``Patter``'s: a vendor name, or a factory returning a new
        Pipecat service for each call (``tts=lambda: ElevenLabsTTSService(...)``), or a
        fallback list of them (``tts=["elevenlabs", "openai"]``).
        ``disclosure`` customises the AI disclosure's wording (it cannot be empty).
        ``transfer_allowlist`` adds numbers ``transfer_call`` may dial, beyond those
        written in the system prompt. ``customize_pipeline(pipeline)`` may insert, replace
        or reorder processors of each call (see ``patter.CallPipeline``).
        ``min_barge_in_s``: how long the caller must speak over the agent to interrupt it;
        shorter sounds (a cough, a click) only pause it for a moment (see docs/barge-in.md).

        When a vendor fails (see docs/reliability.md): ``response_deadline_s`` is the longest
        the caller waits in silence after speaking; then the agent says ``apology`` (LLM or
        TTS failed) or ``didnt_catch`` (the caller's words could not be transcribed), in its
        own voice, rendered ahead. After ``max_failed_turns`` failed turns in a row it says
        ``goodbye`` and hangs up, or transfers the caller to ``fallback_number`` if set.

        ``speculative_replies=True`` starts the LLM on the caller's words while smart-turn
        still waits to judge a pause, and lets its answer be heard only once the turn is
        confirmed (withdrawn if the caller goes on; costs one LLM request per withdrawal;
        see docs/performance.md).
        """
        check_choice(stt, "stt", STT_VENDORS, self.keys, owner="agent")
        check_choice(tts, "tts", TTS_VENDORS, self.keys, owner="agent")
        check_voice(tts if tts is not None else self.tts, voice)
        return build_agent(
            system_prompt,
            voice=voice,
            first_message=first_message,
            variables=variables,
            model=model,
            tools=tools,
            stt=stt if stt is not None else self.stt,
            tts=tts if tts is not None else self.tts,
            llm=self.llm,
            disclosure=disclosure,
            transfer_allowlist=transfer_allowlist,
            hold_music_url=hold_music_url,
            customize_pipeline=customize_pipeline,
            min_barge_in_s=min_barge_in_s,
            recovery=build_recovery(
                response_deadline_s=response_deadline_s,
                apology=apology,
                didnt_catch=didnt_catch,
                goodbye=goodbye,
                max_failed_turns=max_failed_turns,
                fallback_number=fallback_number,
            ),
            speculative_replies=speculative_replies,
        )

    # ----- serving --------------------------------------------------------------------

    async def serve(
        self,
        agent: Agent,
        port: int = 8000,
        recording: bool = False,
        voicemail_message: str = "",
        on_call_start: Callback | None = None,
        on_call_end: Callback | None = None,
        on_transcript: Callback | None = None,
        on_message: Callback | None = None,
        *,
        on_recording: Callback | None = None,
        max_calls: int = DEFAULT_MAX_CALLS,
        max_call_duration_s: float | None = DEFAULT_MAX_CALL_DURATION_S,
        host: str = "0.0.0.0",
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    ) -> None:
        """Answer calls to ``phone_number`` with ``agent`` until SIGTERM or Ctrl-C, or until
        cancelled.

        Points the number's voice webhook at ``webhook_url`` through Twilio's REST API,
        then serves the signed webhooks and media streams on ``host:port``, with
        ``GET /healthz`` and ``GET /readyz`` for a balancer. SIGTERM or SIGINT (in the main
        thread) drains: no new call is taken, live calls finish for up to
        ``drain_timeout_s`` (then they are hung up), every ``on_call_end`` is delivered,
        and ``serve()`` returns. A second signal, or cancelling, hangs up at once.
        """
        if not isinstance(agent, Agent):
            raise PatterConfigError(
                "serve(agent=...) needs the object returned by phone.agent(...)."
            )
        if max_calls < 1:
            raise PatterConfigError("serve(max_calls=...) must be at least 1.")
        if not drain_timeout_s >= 0:
            raise PatterConfigError(
                "serve(drain_timeout_s=...) must be 0 or more seconds (how long live calls "
                "may go on after SIGTERM)."
            )
        if self._running is not None:
            raise PatterConfigError(
                "this Patter already runs a server (from serve(), or started by call()): "
                "run one serve() per Patter and place calls while it runs, or await "
                "phone.close() first."
            )
        config = self._server_config(
            agent,
            Callbacks(on_call_start, on_call_end, on_transcript, on_message, on_recording),
            recording=recording,
            voicemail_message=voicemail_message,
            max_calls=max_calls,
            max_call_duration_s=max_call_duration_s,
        )
        with StopSignals() as stop:
            running = await self._start_server(config, port=port, host=host)
            try:
                server = running.runner.server
                await server.rest.point_number_at(
                    self.phone_number, server.url(VOICE_PATH), server.url(STATUS_PATH)
                )
                self._serving.set()
                logger.info("serving", extra={"port": port, "instance": self.instance_id})
                await _first_of(running.runner.wait(), stop.requested.wait())
                if stop.requested.is_set():
                    await drain(server, timeout_s=drain_timeout_s, hurried=stop.hurried)
            finally:
                await self._stop_server(running)

    async def call(
        self,
        to: str,
        agent: Agent,
        machine_detection: bool = False,
        voicemail_message: str = "",
        on_call_start: Callback | None = None,
        on_call_end: Callback | None = None,
        recording: bool = False,
        *,
        on_transcript: Callback | None = None,
        on_message: Callback | None = None,
        on_recording: Callback | None = None,
        port: int = 8000,
        host: str = "0.0.0.0",
    ) -> OutboundCall:
        """Call ``to`` from ``phone_number`` with ``agent``; returns once Twilio accepted the call.

        ``machine_detection`` turns on Twilio's asynchronous answering machine detection:
        the agent stays silent until Twilio says who answered; a machine gets
        ``voicemail_message`` (else the one given to ``serve()``) once its greeting is
        over, or is hung up on silently if there is none. ``recording`` records the call
        (``serve(recording=True)`` records every call anyway). Callbacks given here take
        precedence over those of ``serve()`` for this call.

        Uses the server of a running ``serve()``; otherwise starts one in the background
        on ``host:port`` (stop it with ``await phone.close()``); it does not change the
        number's voice webhook. ``await handle.wait()`` returns the ``on_call_end`` event.
        """
        _validate.e164(to, "call(to=...)")
        if not isinstance(agent, Agent):
            raise PatterConfigError(
                "call(agent=...) needs the object returned by phone.agent(...)."
            )
        if not isinstance(voicemail_message, str):
            raise PatterConfigError("call(voicemail_message=...) must be a string (or empty).")
        running = self._running
        if running is None:
            config = self._server_config(
                agent,
                Callbacks(),
                recording=False,
                voicemail_message="",
                max_calls=DEFAULT_MAX_CALLS,
                max_call_duration_s=DEFAULT_MAX_CALL_DURATION_S,
            )
            running = await self._start_server(config, port=port, host=host)
            logger.info("serving in the background for call()", extra={"port": port})
        await self.disclosure_audio(agent)
        await self.recovery_lines(agent)
        callbacks = Callbacks(on_call_start, on_call_end, on_transcript, on_message, on_recording)
        return await running.outbound.place(
            to,
            agent,
            callbacks=callbacks,
            machine_detection=machine_detection,
            voicemail_message=voicemail_message,
            recording=recording,
        )

    async def close(self) -> None:
        """Stop the server ``call()`` started (or a running ``serve()``), ending its calls."""
        if self._running is not None:
            await self._stop_server(self._running)

    def _server_config(
        self,
        agent: Agent,
        callbacks: Callbacks,
        *,
        recording: bool,
        voicemail_message: str,
        max_calls: int,
        max_call_duration_s: float | None,
    ) -> ServerConfig:
        return ServerConfig(
            public_url=self.webhook_url,
            phone_number=self.phone_number,
            agent=agent,
            keys=self.keys,
            callbacks=callbacks,
            max_calls=max_calls,
            max_duration_s=max_call_duration_s,
            instance_id=self.instance_id,
            recording=recording,
            voicemail_message=voicemail_message,
        )

    async def _start_server(self, config: ServerConfig, *, port: int, host: str) -> _Running:
        """Build the server for ``config``, prepare its agent and listen on ``host:port``."""
        bridge_pipecat_logs()
        tokens = MediaTokens(self._server_secret)
        cluster = None
        if self._redis_url is not None:
            cluster = Cluster(
                RedisLink(self._redis_url),
                instance_id=self.instance_id,
                token_ttl_s=tokens.ttl_s,
            )
        server = PatterServer(
            config,
            rest=TwilioRest(self.twilio_sid, self._twilio_token, base_url=self.twilio_base_url),
            verifier=WebhookVerifier(self._twilio_token, self.webhook_url),
            tokens=tokens,
            disclosure_audio=self.disclosure_audio,
            cluster=cluster,
            recovery_lines=self.recovery_lines,
        )
        runner = ServerRunner(server, host=host, port=port)
        try:
            if cluster is not None:
                await cluster.start(server.on_forwarded, server.registry.entries)
            await self.disclosure_audio(config.agent)
            await self.recovery_lines(config.agent)
            server.memory.start()
            server.kits.stock(config.agent)
            await runner.start()
        except BaseException:
            await runner.stop()
            server.memory.close()
            await server.kits.close()
            if cluster is not None:
                await cluster.close()
            raise
        self._running = _Running(runner, OutboundCalls(server))
        return self._running

    async def _stop_server(self, running: _Running) -> None:
        """End the server's calls (outbound ones still ringing too), then stop it."""
        if self._running is running:
            self._running = None
        self._serving.clear()
        server = running.runner.server
        server.kits.stop_refilling()
        await running.outbound.close()
        await server.end_all_calls()
        await running.runner.stop()
        server.memory.close()
        await server.kits.close()
        if server.cluster is not None:
            await server.cluster.close()

    async def wait_until_serving(self, timeout_s: float = 30.0) -> None:
        """Wait until ``serve()`` accepts calls (useful in tests and scripts)."""
        await asyncio.wait_for(self._serving.wait(), timeout_s)

    async def disclosure_audio(self, agent: Agent) -> bytes:
        """The agent's AI disclosure as 8 kHz PCM, rendered once per (voice, text) and cached."""
        return await self._canned.speech(agent, agent.disclosure)

    async def recovery_lines(self, agent: Agent) -> RecoveryLines:
        """What the agent says when a vendor fails (apology, didn't catch, goodbye), rendered
        and cached like the disclosure, so it plays even while the TTS is down."""
        return await self._canned.recovery_lines(agent)


@dataclass(frozen=True)
class _Running:
    """The server of this ``Patter`` while it runs, and its outbound calls."""

    runner: ServerRunner
    outbound: OutboundCalls


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Return when the first of ``waits`` is done (raising its error), cancelling the rest."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    for task in done:
        task.result()


def _override(value: str | None, env: str, setting: str, *, websocket: bool = False) -> str | None:
    chosen = value or os.environ.get(env) or None
    if not chosen:
        return None
    schemes = ("http", "https", "ws", "wss") if websocket else ("http", "https")
    return _validate.http_url(chosen, setting, schemes=schemes)
