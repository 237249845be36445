"""Run TwiML the way Twilio does for a voice call, verb by verb, against the fake's phone."""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from websockets.exceptions import InvalidHandshake

from patter.testing._twilio_state import Dial, FakeCall, utcnow
from patter.testing._twilio_webhooks import WebhookSender
from patter.testing.phone import SimulatedPhone

logger = logging.getLogger(__name__)


class TwimlRunner:
    """Executes ``<Response>`` documents: Say, Play, Pause, Connect/Stream, Dial, Hangup,
    Reject and Redirect. Everything a verb does is recorded on the ``FakeCall``.
    """

    def __init__(self, webhooks: WebhookSender) -> None:
        """Use ``webhooks`` to fetch TwiML and to sign stream URLs."""
        self._webhooks = webhooks

    async def fetch(self, call: FakeCall, kind: str, url: str, method: str = "POST") -> str | None:
        """Request TwiML from ``url`` with the call's parameters; None if it failed."""
        result = await self._webhooks.send(kind, call.sid, url, call.call_params(), method=method)
        if call.webhook_status is None:
            call.webhook_status = result.status
        if result.status == 200:
            return result.body
        failure = result.status or result.error
        call.errors.append(f"11200 HTTP retrieval failure: {url} -> {failure}")
        return None

    async def run(self, call: FakeCall, twiml: str) -> str:
        """Run ``twiml`` (following Redirects) and return the call's final status."""
        while True:
            call.twiml = call.twiml or twiml
            call.twiml_history.append(twiml)
            try:
                root = ET.fromstring(twiml)
            except ET.ParseError as exc:
                call.errors.append(f"12100 Document parse failure: {exc}")
                return "completed"
            if root.tag != "Response":
                call.errors.append(f"12100 Document parse failure: root is <{root.tag}>")
                return "completed"
            for verb in root:
                if verb.tag == "Redirect":
                    url = (verb.text or "").strip()
                    fetched = await self.fetch(call, "redirect", url, verb.get("method", "POST"))
                    if fetched is None:
                        return "completed"
                    twiml = fetched
                    break
                final = await self._verb(call, verb)
                if final is not None:
                    return final
            else:
                return "completed"

    async def _verb(self, call: FakeCall, verb: ET.Element) -> str | None:
        """Run one verb; a status string ends the call."""
        if verb.tag == "Reject":
            call.rejected = verb.get("reason", "rejected")
            return "busy" if call.rejected == "busy" else "no-answer"
        if call.status in ("queued", "ringing"):
            call.status = "in-progress"
            call.start_time = utcnow()
        text = (verb.text or "").strip()
        if verb.tag == "Say":
            call.said.append(text)
        elif verb.tag == "Play":
            call.played.append(text)
        elif verb.tag == "Pause":
            await asyncio.sleep(float(verb.get("length", "1")))
        elif verb.tag == "Hangup":
            return "completed"
        elif verb.tag == "Dial":
            numbers = [(n.text or "").strip() for n in verb.findall("Number")] or [text]
            for number in numbers:
                call.dials.append(Dial(number, verb.get("callerId"), dict(verb.attrib)))
            return "completed"
        elif verb.tag == "Connect":
            stream = verb.find("Stream")
            if stream is None:
                call.errors.append("unsupported <Connect> without <Stream>")
            elif await self._stream(call, stream):
                return "completed"
        else:
            call.errors.append(f"unsupported verb <{verb.tag}>")
        return None

    async def _stream(self, call: FakeCall, stream: ET.Element) -> bool:
        """Connect the media stream and hold it until it ends; True if the caller hung up."""
        url = stream.get("url", "")
        parts = urlsplit(url)
        if parts.scheme != "wss" or parts.query:
            call.stream_errors.append(
                f"31920 Stream URL must be wss:// without a query string, got {url!r}"
            )
            return False
        params = {p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter")}
        target, headers = self._webhooks.resolve(url)
        headers["x-twilio-signature"] = self._webhooks.sign(url, {})
        options = {
            "headers": headers,
            "custom_parameters": params,
            "account_sid": call.account_sid,
            "call_sid": call.sid,
            **call.phone_options,
        }
        phone = SimulatedPhone(target, **options)
        try:
            await phone.start()
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            call.stream_errors.append(f"31920 Stream WebSocket handshake error: {exc}")
            logger.info("fake twilio stream failed", extra={"url": url, "error": str(exc)})
            return False
        call.phone = phone
        call.phones.append(phone)
        call.stream_connected.set()
        try:
            await phone.wait_closed(timeout=None)
        finally:
            await phone.close()
        return not phone.closed_by_server
