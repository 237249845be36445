"""The fake Twilio's REST endpoints (``/2010-04-01/Accounts/{AccountSid}/…``) as a FastAPI app."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from patter.testing._twilio_state import (
    API_VERSION,
    TERMINAL_STATUSES,
    FakeCall,
    FakeNumber,
    FakeRequest,
)
from patter.testing.faults import HANG, HTTP, supports

if TYPE_CHECKING:
    from patter.testing.fake_twilio import FakeTwilio

_NUMBER_FIELDS = {
    "FriendlyName": "friendly_name",
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "VoiceFallbackUrl": "voice_fallback_url",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}
_MAX_TWIML_CHARS = 4000
#: Request kinds of the REST API that ``fake.faults`` can fault (``http`` and ``hang``).
FAULT_KINDS = supports("numbers", "calls.create", "calls.fetch", "calls.redirect",
                       "calls.hang_up", "recordings.create", faults=(HTTP, HANG))
#: Twilio's error code for an injected HTTP status (else ``20000 + status``).
_FAULT_CODES = {429: 20429, 500: 20500, 503: 20503}
_FAULT_MESSAGES = {429: "Too Many Requests", 500: "Internal Server Error",
                   503: "Service Unavailable"}


class TwilioApiError(Exception):
    """An error the fake REST API answers with, in Twilio's JSON shape."""

    def __init__(self, status: int, code: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        """``status`` is the HTTP status, ``code`` Twilio's error code."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The JSON error response (what the SDK's ``TwilioRestException`` is built from)."""
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        headers = dict(self.headers)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return JSONResponse(body, status_code=self.status, headers=headers)


def split_words(values: list[str]) -> list[str]:
    """Event lists arrive repeated (SDK) or space/comma separated (hand-written); flatten."""
    return [word for value in values for word in value.replace(",", " ").split()]


def build_rest_app(fake: FakeTwilio) -> FastAPI:
    """The REST API of ``fake``: phone numbers, calls and call recordings."""
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    base = "/2010-04-01/Accounts/{account_sid}"

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TwilioApiError)
        return exc.response()

    app.add_exception_handler(TwilioApiError, on_error)

    async def read(
        request: Request, account_sid: str
    ) -> tuple[dict[str, str], dict[str, list[str]]]:
        """Parse query + form, record the request, then check basic auth."""
        body = (await request.body()).decode()
        lists: dict[str, list[str]] = {}
        for key, value in [*request.query_params.multi_items(), *parse_qsl(body, True)]:
            lists.setdefault(key, []).append(value)
        params = {key: values[0] for key, values in lists.items()}
        authorized = account_sid == fake.account_sid and _basic_auth_ok(
            request.headers.get("authorization", ""), fake.account_sid, fake.auth_token
        )
        fake._record(FakeRequest(request.method, request.url.path, params, lists, authorized))
        if not authorized:
            raise TwilioApiError(401, 20003, "Authenticate")
        return params, lists

    async def play_fault(kind: str) -> None:
        """Raise (or first hang for) the next fault queued for ``kind``, if any."""
        fault = fake.faults.take(kind)
        if fault is None:
            return
        fake._notify()
        if fault.kind == HANG:
            await fake.faults.hang()
            raise TwilioApiError(503, 20503, "Service Unavailable (FakeTwilio closed)")
        raise TwilioApiError(
            fault.status, fault.code or _FAULT_CODES.get(fault.status, 20000 + fault.status),
            f"{_FAULT_MESSAGES.get(fault.status, 'Error')} (FakeTwilio fault)", fault.headers(),
        )

    def find_number(sid: str, path: str) -> FakeNumber:
        for number in fake.numbers.values():
            if number.sid == sid:
                return number
        raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")

    def live_call(sid: str, path: str) -> FakeCall:
        call = fake.calls.get(sid)
        if call is None or call.status in TERMINAL_STATUSES:
            raise TwilioApiError(404, 20404, f"The requested resource {path} was not found")
        return call

    @app.get(base + "/IncomingPhoneNumbers.json")
    async def list_numbers(account_sid: str, request: Request) -> dict[str, Any]:
        params, _ = await read(request, account_sid)
        await play_fault("numbers")
        wanted = params.get("PhoneNumber", "").replace("*", "")
        found = [n for n in fake.numbers.values() if wanted in n.phone_number]
        uri = f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers.json"
        return {
            "end": max(len(found) - 1, 0),
            "first_page_uri": f"{uri}?PageSize=50&Page=0",
            "incoming_phone_numbers": [n.resource(account_sid) for n in found],
            "next_page_uri": None,
            "page": 0,
            "page_size": 50,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }

    @app.api_route(base + "/IncomingPhoneNumbers/{sid}.json", methods=["GET", "POST"])
    async def number(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        params, _ = await read(request, account_sid)
        await play_fault("numbers")
        found = find_number(sid, request.url.path)
        for param, attribute in _NUMBER_FIELDS.items():
            if param in params:
                setattr(found, attribute, params[param])
        return found.resource(account_sid)

    @app.post(base + "/Calls.json")
    async def create_call(account_sid: str, request: Request) -> JSONResponse:
        params, lists = await read(request, account_sid)
        await play_fault("calls.create")
        to, from_ = params.get("To"), params.get("From")
        if not to:
            raise TwilioApiError(400, 21201, "No 'To' number is specified")
        if not from_:
            raise TwilioApiError(400, 21603, "A 'From' phone number is required.")
        if from_ not in fake.numbers:
            raise TwilioApiError(
                400, 21210, f"The source phone number provided, {from_}, is not yet verified "
                "for your account. You may only make calls from phone numbers that you've "
                "verified or purchased from Twilio.",
            )
        if not params.get("Url") and not params.get("Twiml"):
            raise TwilioApiError(400, 21205, "Url parameter is required.")
        _check_twiml(params)
        call = FakeCall(
            account_sid, from_, to, "outbound-api", params=params,
            status_callback=params.get("StatusCallback"),
            status_callback_method=params.get("StatusCallbackMethod", "POST"),
            status_callback_events=split_words(lists.get("StatusCallbackEvent", []))
            or ["completed"],
        )
        fake._dial_out(call, split_words(lists.get("RecordingStatusCallbackEvent", [])))
        return JSONResponse(call.resource(), status_code=201)

    @app.get(base + "/Calls/{sid}.json")
    async def fetch_call(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        await read(request, account_sid)
        await play_fault("calls.fetch")
        call = fake.calls.get(sid)
        if call is None:
            raise TwilioApiError(404, 20404, f"The requested resource {request.url.path} "
                                 "was not found")
        return call.resource()

    @app.post(base + "/Calls/{sid}.json")
    async def update_call(account_sid: str, sid: str, request: Request) -> dict[str, Any]:
        params, _ = await read(request, account_sid)
        hang_up = params.get("Status") in ("completed", "canceled")
        await play_fault("calls.hang_up" if hang_up else "calls.redirect")
        call = live_call(sid, request.url.path)
        _check_twiml(params)
        fake._update(call, params)
        return call.resource()

    @app.post(base + "/Calls/{sid}/Recordings.json")
    async def create_recording(account_sid: str, sid: str, request: Request) -> JSONResponse:
        params, lists = await read(request, account_sid)
        await play_fault("recordings.create")
        call = live_call(sid, request.url.path)
        if fake.fail_recordings:
            raise TwilioApiError(
                400, 21220, "Unable to create record: Call is not eligible for recording"
            )
        events = split_words(lists.get("RecordingStatusCallbackEvent", []))
        recording = fake._start_recording(call, params, events)
        return JSONResponse(recording.resource(account_sid), status_code=201)

    @app.api_route("/{path:path}", methods=["GET", "POST", "DELETE"])
    async def unknown(path: str, request: Request) -> None:
        raise TwilioApiError(404, 20404, f"The requested resource /{path} was not found")

    return app


def _check_twiml(params: dict[str, str]) -> None:
    # Twilio caps inline TwiML at 4000 characters; 21236 is a stand-in error code.
    twiml = params.get("Twiml", "")
    if len(twiml) > _MAX_TWIML_CHARS:
        raise TwilioApiError(
            400, 21236, f"Twiml is {len(twiml)} characters; the maximum is {_MAX_TWIML_CHARS}"
        )


def _basic_auth_ok(header: str, username: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected = f"{username}:{password}"
    return secrets.compare_digest(decoded.encode(), expected.encode())
