"""What makes a public phone number safe: signed webhooks and per-call media tokens.

- ``WebhookVerifier`` checks ``X-Twilio-Signature`` with the twilio SDK's
  ``RequestValidator`` against the *public* URL (built from ``webhook_url``), so it
  holds behind proxies and tunnels that rewrite scheme, host or port.
- ``MediaTokens`` issues the token Patter puts in the TwiML ``<Parameter>`` of each
  stream: HMAC-SHA256 over (CallSid, expiry, nonce) with the server secret, checked in
  constant time on the stream's ``start``. No session table is needed, so instances
  sharing the secret can share the load. Replay protection is per instance, and
  cluster-wide with Redis (``patter._cluster``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Mapping

from twilio.request_validator import RequestValidator

from patter._log import register_secret_pattern

TOKEN_VERSION = "v1"
MAX_REMEMBERED_NONCES = 100_000
#: The shape of a media token (``v1.<expiry>.<nonce>.<mac>``); logs hide every match.
TOKEN_PATTERN = re.compile(r"\bv1\.\d{1,12}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}", re.ASCII)


class InvalidMediaToken(Exception):
    """The media token is missing, forged, expired, replayed or for another call."""


class WebhookVerifier:
    """Verify Twilio webhook signatures against the public base URL."""

    def __init__(self, auth_token: str, public_base_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self._base = public_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"WebhookVerifier(public_base_url={self._base!r})"

    def public_url(self, path: str, query: str = "") -> str:
        """The URL Twilio called: public base + path (+ query string)."""
        return f"{self._base}{path}" + (f"?{query}" if query else "")

    def verify(
        self, path: str, query: str, params: Mapping[str, str], signature: str | None
    ) -> bool:
        """True if ``signature`` is Twilio's signature of this request."""
        if not signature:
            return False
        return bool(self._validator.validate(self.public_url(path, query), dict(params), signature))


class MediaTokens:
    """Short-lived, single-use tokens binding a media stream to one CallSid.

    Args:
        secret: Server secret (bytes or str); share it between instances behind one number.
            Generated (32 random bytes) if not given.
        ttl_s: How long a token may wait between the voice webhook and the stream start.
    """

    def __init__(self, secret: bytes | str | None = None, *, ttl_s: float = 60.0) -> None:
        if secret is None:
            secret = secrets.token_bytes(32)
        self._key = secret.encode() if isinstance(secret, str) else secret
        self._ttl_s = ttl_s
        self._used: OrderedDict[str, float] = OrderedDict()
        register_secret_pattern(TOKEN_PATTERN)

    def __repr__(self) -> str:
        return f"MediaTokens(ttl_s={self._ttl_s:g})"

    @property
    def ttl_s(self) -> float:
        """Seconds a token stays valid after it is issued."""
        return self._ttl_s

    def issue(self, call_sid: str, *, now: float | None = None) -> str:
        """A token for ``call_sid``: ``v1.<expiry>.<nonce>.<mac>``."""
        expiry = int((now if now is not None else time.time()) + self._ttl_s)
        nonce = secrets.token_urlsafe(12)
        return f"{TOKEN_VERSION}.{expiry}.{nonce}.{self._mac(call_sid, expiry, nonce)}"

    def redeem(self, token: str | None, call_sid: str, *, now: float | None = None) -> str:
        """Accept ``token`` for ``call_sid`` once on this instance, or raise
        ``InvalidMediaToken`` saying why; returns its nonce (which a cluster spends in Redis,
        ``patter._cluster.Cluster.spend_token``)."""
        if not token:
            raise InvalidMediaToken("no token")
        if not TOKEN_PATTERN.fullmatch(token):
            raise InvalidMediaToken("malformed token")
        _, expiry_text, nonce, mac = token.split(".")
        expected = self._mac(call_sid, int(expiry_text), nonce)
        if not hmac.compare_digest(expected.encode(), mac.encode()):
            raise InvalidMediaToken("bad signature or another call's token")
        current = now if now is not None else time.time()
        if int(expiry_text) < current:
            raise InvalidMediaToken("expired token")
        self._forget_expired(current)
        if nonce in self._used:
            raise InvalidMediaToken("token already used")
        self._used[nonce] = float(expiry_text)
        while len(self._used) > MAX_REMEMBERED_NONCES:
            self._used.popitem(last=False)
        return nonce

    def _mac(self, call_sid: str, expiry: int, nonce: str) -> str:
        message = f"{TOKEN_VERSION}|{call_sid}|{expiry}|{nonce}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _forget_expired(self, now: float) -> None:
        while self._used:
            _, expiry = next(iter(self._used.items()))
            if expiry >= now:
                break
            self._used.popitem(last=False)
