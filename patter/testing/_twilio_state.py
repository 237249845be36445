"""What the fake Twilio remembers: numbers, calls, recordings, requests and webhooks sent."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from patter.testing.phone import SimulatedPhone


API_VERSION = "2010-04-01"
TERMINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two-letter prefix and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None) -> str | None:
    """A datetime as Twilio's REST API writes it (``Tue, 31 Aug 2010 20:36:28 +0000``)."""
    return format_datetime(moment) if moment else None


def utcnow() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class FakeRequest:
    """One REST request the fake received (credentials are not recorded)."""

    method: str
    path: str
    params: dict[str, str]
    """Query and form parameters; the first value of each name."""
    param_lists: dict[str, list[str]]
    """Every value of each name, in order (``StatusCallbackEvent`` repeats)."""
    authorized: bool


@dataclass
class WebhookResult:
    """One HTTP request "Twilio" made to the application, and what came back."""

    kind: str
    """``voice``, ``twiml`` (Url fetch), ``redirect``, ``status``, ``amd`` or ``recording``."""
    call_sid: str
    url: str
    method: str
    params: dict[str, str]
    signature: str | None
    status: int | None
    """HTTP status, or None if the request failed (``error`` says why)."""
    body: str = ""
    error: str | None = None


@dataclass
class FakeNumber:
    """A phone number the fake account owns, with its voice configuration."""

    phone_number: str
    sid: str = field(default_factory=lambda: new_sid("PN"))
    friendly_name: str = ""
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"
    created: datetime = field(default_factory=utcnow)

    def resource(self, account_sid: str) -> dict[str, Any]:
        """The IncomingPhoneNumber JSON Twilio returns."""
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(utcnow()),
            "friendly_name": self.friendly_name or self.phone_number,
            "phone_number": self.phone_number,
            "sid": self.sid,
            "status": "in-use",
            "status_callback": self.status_callback or "",
            "status_callback_method": self.status_callback_method,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{self.sid}.json",
            "voice_fallback_url": self.voice_fallback_url,
            "voice_method": self.voice_method,
            "voice_url": self.voice_url,
        }


@dataclass(frozen=True)
class Dial:
    """A ``<Dial>`` the call executed: the transfer target."""

    number: str
    caller_id: str | None
    attributes: dict[str, str]


@dataclass
class FakeRecording:
    """A call recording started over REST (or with ``Record=true``)."""

    call_sid: str
    channels: int
    status_callback: str | None
    status_callback_method: str
    callback_events: list[str]
    sid: str = field(default_factory=lambda: new_sid("RE"))
    status: str = "in-progress"
    started: datetime = field(default_factory=utcnow)
    duration_s: int | None = None
    callbacks: list[WebhookResult] = field(default_factory=list)

    def resource(self, account_sid: str) -> dict[str, Any]:
        """The call Recording JSON Twilio returns."""
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "call_sid": self.call_sid,
            "channels": self.channels,
            "conference_sid": None,
            "date_created": rfc2822(self.started),
            "date_updated": rfc2822(utcnow()),
            "duration": None if self.duration_s is None else str(self.duration_s),
            "encryption_details": None,
            "error_code": None,
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "source": "StartCallRecordingAPI",
            "start_time": rfc2822(self.started),
            "status": self.status,
            "track": "both",
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{self.call_sid}"
            f"/Recordings/{self.sid}.json",
        }


@dataclass
class OutboundScript:
    """How the far end of the next outbound call behaves (``FakeTwilio.next_outbound``)."""

    answer: Literal["answered", "busy", "no-answer", "failed"] = "answered"
    answered_by: str = "human"
    """AMD verdict: human, machine_start, machine_end_beep, machine_end_silence, fax, unknown…"""
    amd_delay_s: float = 0.2
    """Time from answer to the AMD verdict (async callback, or TwiML fetch with sync AMD)."""
    ring_s: float = 0.0
    twiml_delay_s: float = 0.0
    """Time from answer to fetching the call's TwiML (a slow network): with a shorter
    ``amd_delay_s``, the async AMD verdict reaches the application before the stream starts."""
    phone_options: dict[str, Any] = field(default_factory=dict)
    """Extra ``SimulatedPhone`` keyword arguments for the call's media stream."""
    completed_callback_delay_s: float = 0.0
    """Time from the call's end to its ``completed`` status callback (Twilio sends it
    after the hang-up, so it can reach the application after the session has ended)."""


@dataclass(eq=False)
class FakeCall:
    """One call on the fake Twilio, inbound or outbound, and everything that happened on it."""

    account_sid: str
    from_: str
    to: str
    direction: str
    """``inbound`` or ``outbound-api``."""
    status: str = "queued"
    sid: str = field(default_factory=lambda: new_sid("CA"))
    params: dict[str, str] = field(default_factory=dict)
    """The ``Calls.json`` create parameters (outbound calls)."""
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: list[str] = field(default_factory=list)
    completed_callback_delay_s: float = 0.0
    """See ``OutboundScript.completed_callback_delay_s``."""
    answered_by: str | None = None
    webhook_status: int | None = None
    """HTTP status of the voice webhook (inbound) or TwiML ``Url`` fetch (outbound)."""
    twiml: str | None = None
    """The first TwiML document the call ran."""
    twiml_history: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    played: list[str] = field(default_factory=list)
    dials: list[Dial] = field(default_factory=list)
    rejected: str | None = None
    updates: list[dict[str, str]] = field(default_factory=list)
    recordings: list[FakeRecording] = field(default_factory=list)
    status_callbacks: list[WebhookResult] = field(default_factory=list)
    phone: SimulatedPhone | None = None
    """The media stream's phone (the most recent one if the call streamed more than once)."""
    phones: list[SimulatedPhone] = field(default_factory=list)
    phone_options: dict[str, Any] = field(default_factory=dict)
    stream_errors: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    created: datetime = field(default_factory=utcnow)
    start_time: datetime | None = None
    end_time: datetime | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the call is over and its final callbacks have been delivered."""
    stream_connected: asyncio.Event = field(default_factory=asyncio.Event)
    _hang_up: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def wait_stream(self, *, timeout: float = 10.0) -> SimulatedPhone:
        """Wait for the call's media stream and return its phone.

        Raises ``RuntimeError`` (with the call's errors) if the call ends without a stream.
        """
        waits = [asyncio.ensure_future(e.wait()) for e in (self.stream_connected, self.ended)]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if self.phone is not None:
            return self.phone
        problem = "ended" if self.ended.is_set() else f"had no stream after {timeout} s"
        raise RuntimeError(
            f"call {self.sid} {problem}: webhook status {self.webhook_status}, "
            f"stream errors {self.stream_errors}, errors {self.errors}, TwiML {self.twiml!r}"
        )

    async def wait_ended(self, *, timeout: float = 10.0) -> None:
        """Wait until the call is over and its final callbacks were sent."""
        await asyncio.wait_for(self.ended.wait(), timeout)

    async def hang_up(self) -> None:
        """The caller hangs up: the stream gets ``stop``, the call completes."""
        if self._hang_up is not None:
            await self._hang_up()

    def call_params(self) -> dict[str, str]:
        """The parameters Twilio puts on every webhook about this call."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": self.sid,
            "CallStatus": self.status,
            "Called": self.to,
            "CalledCountry": "US",
            "Caller": self.from_,
            "CallerCountry": "US",
            "Direction": self.direction,
            "From": self.from_,
            "FromCountry": "US",
            "To": self.to,
            "ToCountry": "US",
        }
        if self.answered_by:
            params["AnsweredBy"] = self.answered_by
        return params

    def resource(self) -> dict[str, Any]:
        """The Call JSON Twilio returns."""
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        duration = None
        if self.start_time and self.end_time:
            duration = str(int((self.end_time - self.start_time).total_seconds()))
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": self.answered_by,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": rfc2822(self.created),
            "date_updated": rfc2822(utcnow()),
            "direction": self.direction,
            "duration": duration,
            "end_time": rfc2822(self.end_time),
            "forwarded_from": None,
            "from": self.from_,
            "from_formatted": self.from_,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": self.sid,
            "start_time": rfc2822(self.start_time),
            "status": self.status,
            "subresource_uris": {"recordings": f"{base}/Recordings.json"},
            "to": self.to,
            "to_formatted": self.to,
            "trunk_sid": None,
            "uri": f"{base}.json",
        }
