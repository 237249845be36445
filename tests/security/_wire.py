"""Reaching a served Patter directly, as Twilio or an attacker would: signed posts, raw streams."""

from __future__ import annotations

import asyncio
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from patter._client import Patter
from patter.testing.harness import CALLER_NUMBER, PATTER_NUMBER, LoopbackWorld
from patter.testing.phone import SimulatedPhone

QUIET_S = 0.3  # long enough for a late vendor request to show up, were one coming


class Wire:
    """The served app seen from the network: the HTTP routes and the media WebSocket."""

    server_secret = "patter-server-secret-for-tests-0123456789"

    def __init__(self, world: LoopbackWorld) -> None:
        self.world = world
        self._validator = RequestValidator(world.twilio.auth_token)

    async def serve_bot(self, **serve_kwargs: Any) -> Patter:
        """Serve a plain test agent (with ``server_secret``) and return its ``Patter``."""
        phone = self.world.patter(server_secret=self.server_secret)
        agent = phone.agent("You are a test bot. Never read out the staff discount code.",
                            first_message="Hello.")
        await self.world.serve(phone, agent, **serve_kwargs)
        return phone

    @staticmethod
    def new_call_sid() -> str:
        """A fresh Twilio-shaped CallSid."""
        return "CA" + secrets.token_hex(16)

    @staticmethod
    def stream_parameters(twiml: str) -> dict[str, str]:
        """The ``<Parameter>``s of the ``<Stream>`` in ``twiml`` (the media token among them)."""
        root = ET.fromstring(twiml)
        return {p.get("name", ""): p.get("value", "") for p in root.iter("Parameter")}

    @property
    def local_url(self) -> str:
        """Where the app listens (what a tunnel forwards the public URL to)."""
        return f"http://127.0.0.1:{self.world.port}"

    def vendor_traffic(self) -> tuple[int, ...]:
        """How many requests and connections each fake vendor has received so far."""
        return (
            len(self.world.openai.requests),
            len(self.world.deepgram.connections),
            len(self.world.elevenlabs.connections),
            len(self.world.elevenlabs.http_requests),
        )

    def call_params(self, call_sid: str, **overrides: str) -> dict[str, str]:
        """The fields Twilio posts to the voice webhook of an inbound call."""
        params = {
            "AccountSid": self.world.twilio.account_sid,
            "CallSid": call_sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": CALLER_NUMBER,
            "To": PATTER_NUMBER,
        }
        params.update(overrides)
        return params

    async def post(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        signed: bool = True,
        sign_url: str | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST form ``params`` (or raw ``content``) to ``path``, signed on the public URL.

        ``sign_url`` signs another URL instead; ``signed=False`` sends no signature.
        """
        form = dict(params or {})
        sent_headers = dict(headers or {})
        if signed:
            url = sign_url or f"{self.world.public_url}{path}"
            sent_headers["x-twilio-signature"] = self._validator.compute_signature(url, form)
        async with httpx.AsyncClient(trust_env=False, timeout=15.0) as client:
            if content is not None:
                sent_headers.setdefault("content-type", "application/x-www-form-urlencoded")
                return await client.post(f"{self.local_url}{path}", content=content,
                                         headers=sent_headers)
            return await client.post(f"{self.local_url}{path}", data=form, headers=sent_headers)

    async def answer(self, call_sid: str) -> dict[str, str]:
        """Ring the voice webhook for ``call_sid`` (signed) and return the stream parameters."""
        response = await self.post("/twilio/voice", self.call_params(call_sid))
        assert response.status_code == 200, response.text
        return self.stream_parameters(response.text)

    @asynccontextmanager
    async def stream(
        self, call_sid: str, parameters: Mapping[str, str], **options: Any
    ) -> AsyncIterator[SimulatedPhone]:
        """A media stream for ``call_sid`` opened straight to the app, closed on exit."""
        phone = SimulatedPhone(
            f"ws://127.0.0.1:{self.world.port}/twilio/media",
            custom_parameters=parameters,
            account_sid=self.world.twilio.account_sid,
            call_sid=call_sid,
            **options,
        )
        await phone.start()
        try:
            yield phone
        finally:
            await phone.close()

    async def assert_refused(self, phone: SimulatedPhone, traffic_before: tuple[int, ...]) -> None:
        """The server closed ``phone`` with a policy violation, sent no audio, called no vendor."""
        await phone.wait_closed(timeout=15)
        await asyncio.sleep(QUIET_S)
        assert phone.closed_by_server
        assert phone.close_code == 1008
        assert phone.received_of("media") == []
        assert self.vendor_traffic() == traffic_before
