"""A whole phone call on loopback: fake Twilio and vendors, a running ``serve()``, callers.

Used by Patter's tests, the offline demo and the benchmarks; handy for users' own tests::

    async with LoopbackWorld() as world:
        phone = world.patter()
        await world.serve(phone, phone.agent("You are a test bot."))
        call = await world.call_in()
        call.phone.say_text("Hello")
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from patter._agent import Agent
from patter._callbacks import Callbacks
from patter._client import Patter
from patter._cluster import Cluster
from patter._outbound import OutboundCall
from patter._security import MediaTokens, WebhookVerifier
from patter._server import PatterServer, ServerConfig
from patter.audio import PHONE_RATE_HZ
from patter.testing._lifecycle import AsyncStartClose
from patter.testing.audio import resample, synthesize_speech
from patter.testing.fake_deepgram import FakeDeepgram
from patter.testing.fake_elevenlabs import FakeElevenLabs
from patter.testing.fake_openai import FakeOpenAI
from patter.testing.fake_twilio import FakeCall, FakeTwilio
from patter.testing.phone import SimulatedPhone
from patter.transports.twilio_rest import TwilioRest

PATTER_NUMBER = "+15550001234"
CALLER_NUMBER = "+15557654321"
CALLEE_NUMBER = "+15550009876"
OPENAI_KEY = "sk-test-openai-0123456789"
DEEPGRAM_KEY = "dg-test-0123456789abcdef"
ELEVENLABS_KEY = "xi-test-0123456789abcdef"


def openai_speech_at_8k(text: str) -> bytes:
    """What the caller hears when the fake OpenAI TTS says ``text``: its 24 kHz speech at 8 kHz."""
    return resample(synthesize_speech(text, sample_rate_hz=24000), 24000, PHONE_RATE_HZ)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackWorld(AsyncStartClose):
    """Fake Twilio, OpenAI, Deepgram and ElevenLabs on 127.0.0.1, and Patter served among them."""

    def __init__(self) -> None:
        self.twilio = FakeTwilio(numbers=[PATTER_NUMBER])
        self.openai = FakeOpenAI(api_key=OPENAI_KEY)
        self.deepgram = FakeDeepgram(api_key=DEEPGRAM_KEY)
        self.elevenlabs = FakeElevenLabs(api_key=ELEVENLABS_KEY)
        self.port = 0
        self._serving: asyncio.Task[None] | None = None
        self._phones: list[Patter] = []

    @property
    def secrets(self) -> list[str]:
        """Every secret in play (for checking that none leaks into logs)."""
        return [self.twilio.auth_token, OPENAI_KEY, DEEPGRAM_KEY, ELEVENLABS_KEY]

    @property
    def public_url(self) -> str:
        """The public https URL Patter is told it has; the fake Twilio tunnels it to loopback."""
        return "https://patter.loopback.test"

    def _route(self) -> None:
        """Pick the port Patter will serve on and tunnel the public URL to it."""
        if not self.port:
            self.port = free_port()
            self.twilio.route(self.public_url, f"http://127.0.0.1:{self.port}")

    def environment(self, *, vendors: bool = True) -> dict[str, str]:
        """Environment variables under which ``Patter()`` (settings read from the
        environment) is wired to this world: its Twilio, number and public URL, and with
        ``vendors`` the fake OpenAI, Deepgram and ElevenLabs too."""
        self._route()
        env = {
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_TOKEN": self.twilio.auth_token,
            "TWILIO_BASE_URL": self.twilio.base_url,
            "PHONE_NUMBER": PATTER_NUMBER,
            "WEBHOOK_URL": self.public_url,
        }
        if vendors:
            env.update({
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENAI_KEY": OPENAI_KEY,
                "DEEPGRAM_API_KEY": DEEPGRAM_KEY,
                "ELEVENLABS_API_KEY": ELEVENLABS_KEY,
                "OPENAI_BASE_URL": self.openai.base_url,
                "DEEPGRAM_BASE_URL": self.deepgram.base_url,
                "ELEVENLABS_BASE_URL": self.elevenlabs.base_url,
            })
        return env

    def patter(self, **overrides: Any) -> Patter:
        """A ``Patter`` wired to the fakes; keyword arguments override any setting."""
        phone = Patter(**self.patter_settings(**overrides))
        self._phones.append(phone)
        return phone

    def patter_settings(self, **overrides: Any) -> dict[str, Any]:
        """The ``Patter(...)`` keyword arguments wiring it to the fakes (all strings), for a
        ``Patter`` built elsewhere, e.g. in another process; it is served on ``self.port``."""
        self._route()
        settings: dict[str, Any] = {
            "twilio_sid": self.twilio.account_sid,
            "twilio_token": self.twilio.auth_token,
            "openai_key": OPENAI_KEY,
            "phone_number": PATTER_NUMBER,
            "webhook_url": self.public_url,
            "deepgram_key": DEEPGRAM_KEY,
            "elevenlabs_key": ELEVENLABS_KEY,
            "twilio_base_url": self.twilio.base_url,
            "openai_base_url": self.openai.base_url,
            "deepgram_base_url": self.deepgram.base_url,
            "elevenlabs_base_url": self.elevenlabs.base_url,
        }
        settings.update(overrides)
        return settings

    def in_process_server(
        self, *, max_calls: int = 1, token_ttl_s: float = 60.0, cluster: Cluster | None = None
    ) -> PatterServer:
        """A Patter server for this world that is not listening on a port: drive its ASGI app
        (``server.app``) in-process, e.g. with ``httpx.ASGITransport``. Its agent says nothing
        (the disclosure renders as no audio), so only the webhooks and limits are exercised.
        With ``cluster`` (not started here) it is one instance of a cluster sharing Redis."""
        phone = self.patter()
        token = self.twilio.auth_token
        return PatterServer(
            ServerConfig(
                public_url=self.public_url,
                phone_number=phone.phone_number,
                agent=phone.agent("You are a test bot."),
                keys=phone.keys,
                callbacks=Callbacks(),
                max_calls=max_calls,
                max_duration_s=None,
            ),
            rest=TwilioRest(self.twilio.account_sid, token, base_url=self.twilio.base_url),
            verifier=WebhookVerifier(token, self.public_url),
            tokens=MediaTokens(ttl_s=token_ttl_s),
            disclosure_audio=lambda _agent: asyncio.sleep(0, result=b""),
            cluster=cluster,
        )

    async def serve(self, phone: Patter, agent: Agent, **serve_kwargs: Any) -> None:
        """Run ``phone.serve(agent, ...)`` in the background until the world closes."""
        self._serving = asyncio.create_task(
            phone.serve(agent, port=self.port, host="127.0.0.1", **serve_kwargs)
        )
        waiting = asyncio.create_task(phone.wait_until_serving())
        await asyncio.wait({self._serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if self._serving.done():
            waiting.cancel()
            self._serving.result()
        await waiting

    async def wait_served(self, timeout: float = 30.0) -> None:
        """Wait until ``serve()`` returns by itself (drained after SIGTERM), raising its error."""
        if self._serving is not None:
            await asyncio.wait_for(asyncio.shield(self._serving), timeout)

    async def stop_serving(self) -> None:
        """Cancel ``serve()`` (as Ctrl-C would) and wait for it to finish."""
        if self._serving is not None:
            self._serving.cancel()
            await asyncio.gather(self._serving, return_exceptions=True)
            self._serving = None

    def call_rest_requests(self) -> list[tuple[str, dict[str, str]]]:
        """REST requests about calls, in order: (path after the account SID, form params)."""
        return [
            (r.path.split(self.twilio.account_sid, 1)[1], r.params)
            for r in self.twilio.requests
            if "/Calls" in r.path
        ]

    async def call_in(self, *, from_: str = CALLER_NUMBER, **kwargs: Any) -> FakeCall:
        """Place an inbound call to the Patter number, as Twilio would."""
        return await self.twilio.place_inbound_call(from_=from_, to=PATTER_NUMBER, **kwargs)

    async def call_out(
        self, phone: Patter, agent: Agent, *, to: str = CALLEE_NUMBER, **call_kwargs: Any
    ) -> OutboundCall:
        """``phone.call(to, agent, ...)``, starting its server on the world's port if needed.

        Script the far end first with ``world.twilio.next_outbound = OutboundScript(...)``.
        """
        return await phone.call(to, agent, port=self.port, host="127.0.0.1", **call_kwargs)

    @property
    def _fakes(self) -> tuple[FakeTwilio, FakeOpenAI, FakeDeepgram, FakeElevenLabs]:
        return (self.twilio, self.openai, self.deepgram, self.elevenlabs)

    async def start(self) -> None:
        """Start the fakes."""
        try:
            await asyncio.gather(*(fake.start() for fake in self._fakes))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop serving, close every Patter made here, then stop the fakes (together: each
        server's shutdown waits a fixed 0.2 s)."""
        await self.stop_serving()
        for phone in self._phones:
            await phone.close()  # a server that call() started in the background
        await asyncio.gather(*(fake.close() for fake in self._fakes))


async def agent_turn_over(
    caller: SimulatedPhone, *, answer_s: float = 0.5, quiet_s: float = 0.7,
    answer_timeout_s: float = 15.0,
) -> bool:
    """Wait until the agent has answered (``answer_s`` more of speech heard) and gone
    quiet; False if it did not start answering within ``answer_timeout_s``."""
    heard = caller.heard_voiced_s
    try:
        await caller.wait_for_heard(heard + answer_s, timeout=answer_timeout_s)
        answered = True
    except TimeoutError:
        answered = False
    await caller.wait_until_quiet(quiet_s=quiet_s, timeout=30)
    return answered


async def wait_for(
    predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``predicate`` until true (for state that has no event to wait on)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)
