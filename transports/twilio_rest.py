"""Twilio REST actions on numbers and live calls, through the official ``twilio`` SDK.

The API host can be overridden (``base_url``) — how tests reach the fake Twilio, and how
a user reaches a Twilio-compatible endpoint in production. Requests refused with 429, and
repeatable ones answered 5xx, are tried again a bounded number of times
(:mod:`patter.transports._twilio_retry`); a call already over (20404) is not an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import ClientError
from aiohttp_retry import RetryClient
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from patter._log import get_logger, mask_number, redact
from patter.errors import PatterConfigError, TwilioError
from patter.transports._twilio_retry import ATTEMPTS, TwilioRetry, is_repeatable

logger = get_logger(__name__)

CALL_ALREADY_ENDED = 20404


class TwilioRest:
    """The REST calls Patter makes: configure the number, place, redirect, end and record calls."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._timeout_s = timeout_s
        # The async SDK client ignores its own timeout (it passes timeout=None to aiohttp),
        # so each action is bounded in _call, tries again included.
        self._http = AsyncTwilioHttpClient()
        # The SDK's own retrying session (what max_retries= builds), with Patter's policy.
        self._http.session = RetryClient(client_session=self._http.session,
                                         retry_options=TwilioRetry())
        self._client = Client(account_sid, auth_token, http_client=self._http)
        if base_url:
            self._client.api.base_url = base_url.rstrip("/")
            # TWILIO_REGION / TWILIO_EDGE would rewrite the overridden host.
            self._client.edge = self._client.region = None

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def find_number(self, phone_number: str) -> str | None:
        """The SID of ``phone_number`` on the account (IncomingPhoneNumbers), None if absent."""
        numbers = await self._call(
            self._client.incoming_phone_numbers.list_async(phone_number=phone_number, limit=1),
            "phone number lookup",
        )
        return str(numbers[0].sid) if numbers else None

    async def point_number_at(self, phone_number: str, voice_url: str, status_url: str) -> str:
        """Set the number's voice webhook to ``voice_url``; returns the number's SID."""
        sid = await self.find_number(phone_number)
        if sid is None:
            raise PatterConfigError(
                f"phone_number {mask_number(phone_number)} is not on this Twilio account: buy or "
                "port it in the Twilio Console, or fix Patter(phone_number=...)."
            )
        await self._call(
            self._client.incoming_phone_numbers(sid).update_async(
                voice_url=voice_url,
                voice_method="POST",
                status_callback=status_url,
                status_callback_method="POST",
            ),
            "phone number update",
        )
        return sid

    async def create_call(self, params: Mapping[str, Any]) -> str:
        """Place an outbound call (Calls.json); returns the CallSid.

        Tried again only when refused with 429: after a 5xx the call may exist already.
        """
        call = await self._call(self._client.calls.create_async(**params), "call create")
        return str(call.sid)

    async def redirect(self, call_sid: str, twiml: str) -> bool:
        """Replace the live call's TwiML; False if the call already ended (20404)."""
        return await self._update(call_sid, "redirect", twiml=twiml)

    async def hang_up(self, call_sid: str) -> bool:
        """End the call; False if it already ended (not an error)."""
        return await self._update(call_sid, "hang-up", status="completed")

    async def start_recording(self, call_sid: str, status_callback: str) -> tuple[str, str]:
        """Record both channels of the live call; returns (RecordingSid, recording URL)."""
        recording = await self._call(
            self._client.calls(call_sid).recordings.create_async(
                recording_channels="dual",
                recording_status_callback=status_callback,
                recording_status_callback_event=["completed", "absent"],
            ),
            "recording start",
        )
        uri = str(getattr(recording, "uri", "") or "")
        url = f"{self._client.api.base_url}{uri.removesuffix('.json')}" if uri else ""
        return str(recording.sid), url

    async def _update(self, call_sid: str, action: str, **fields: Any) -> bool:
        try:
            await self._call(self._client.calls(call_sid).update_async(**fields), action)
        except TwilioError as exc:
            if exc.code == CALL_ALREADY_ENDED or exc.status == 404:
                logger.info("call already ended", extra={"call_sid": call_sid, "action": action})
                return False
            raise
        return True

    async def _call(self, awaitable: Any, action: str = "request") -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await awaitable
        except TwilioRestException as exc:
            raise _error(exc, action) from None
        except (ClientError, TimeoutError) as exc:
            raise TwilioError(
                f"Twilio REST {action} failed: no answer within {self._timeout_s:g} s "
                f"({type(exc).__name__})"
            ) from None
        except TwilioException as exc:
            # List pages raise a bare TwilioException (e.g. on HTTP 401) with the response attached.
            response = exc.args[1] if len(exc.args) > 1 else None
            status = int(getattr(response, "status_code", 0) or 0)
            hint = " — check Patter(twilio_sid=..., twilio_token=...)." if status == 401 else ""
            raise TwilioError(
                redact(f"Twilio REST {action} failed: HTTP {status}: {exc.args[0]}{hint}"),
                status=status,
            ) from None


def _error(exc: TwilioRestException, action: str) -> TwilioError:
    tries = ""
    if exc.status == 429 or (exc.status >= 500 and is_repeatable(exc.method, exc.uri)):
        tries = f" after {ATTEMPTS} tries"
    elif exc.status >= 500:
        tries = " (not tried again: a repeated create could place a second call)"
    message = redact(
        f"Twilio REST {action} failed{tries}: HTTP {exc.status} code {exc.code}: {exc.msg}"
    )
    if exc.status == 401:
        message += " — check Patter(twilio_sid=..., twilio_token=...)."
    return TwilioError(message, status=exc.status, code=exc.code)
