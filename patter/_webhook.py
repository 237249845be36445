"""Reading a Twilio webhook safely: size cap, form parsing, signature, field checks; the
logged answer to one rejected."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import Request, Response

from patter._log import get_logger
from patter._security import WebhookVerifier
from patter._validate import CALL_SID

logger = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
PHONE = re.compile(
    r"^(\+[1-9]\d{6,14}|client:[\w.-]{1,64}|sip:[^\s]{1,200}|anonymous|)\Z",
    re.IGNORECASE | re.ASCII,
)


class WebhookRejected(Exception):
    """The request is not a valid, signed Twilio webhook; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def read_signed_form(request: Request, verifier: WebhookVerifier) -> dict[str, str]:
    """The form fields of a signed Twilio POST, or ``WebhookRejected`` (400/403/413)."""
    declared = request.headers.get("content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise WebhookRejected(400, "Content-Length is not a number")
    if declared is not None and (len(declared) > 12 or int(declared) > MAX_BODY_BYTES):
        raise WebhookRejected(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRejected(413, "body too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise WebhookRejected(400, "body is not UTF-8 form data") from None
    form = dict(pairs)
    signature = request.headers.get("x-twilio-signature")
    if not verifier.verify(request.url.path, request.url.query, form, signature):
        raise WebhookRejected(403, "missing or invalid X-Twilio-Signature")
    return form


def require_call_fields(form: dict[str, str], *, numbers: bool) -> None:
    """Check CallSid (and From/To when ``numbers``) have Twilio's shapes, else 400."""
    if not CALL_SID.match(form.get("CallSid", "")):
        raise WebhookRejected(400, "CallSid missing or malformed")
    if numbers:
        for name in ("From", "To"):
            if not PHONE.match(form.get(name, "")):
                raise WebhookRejected(400, f"{name} is not a phone number")


def rejected(exc: WebhookRejected, request: Request) -> Response:
    """The answer to a rejected webhook (its status, no body), logged with the reason."""
    details = {"status": exc.status, "reason": str(exc), "path": request.url.path}
    logger.warning("webhook rejected", extra=details)
    return Response(status_code=exc.status)
