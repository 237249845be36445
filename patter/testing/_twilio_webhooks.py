"""Signed HTTP requests from the fake Twilio to the application, and public-URL routing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
from twilio.request_validator import RequestValidator

from patter.testing._twilio_state import WebhookResult

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_PLAIN_SCHEME = {"https": "http", "wss": "ws", "http": "http", "ws": "ws"}


class WebhookSender:
    """Signs requests like Twilio (``X-Twilio-Signature``) and delivers them on loopback.

    ``routes`` maps a public base URL (``https://agent.example.com``) to the local server
    that answers it, as a tunnel would; the signature is always computed on the public URL.
    """

    def __init__(self, auth_token: str, *, on_result: Callable[[], None]) -> None:
        """Create a sender that signs with ``auth_token``; ``on_result`` runs after each request."""
        self._on_result = on_result
        self.validator = RequestValidator(auth_token)
        self.routes: dict[str, str] = {}
        self.results: list[WebhookResult] = []
        self._client = httpx.AsyncClient(trust_env=False, timeout=15.0)

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """The ``X-Twilio-Signature`` Twilio would send for a request to ``url``."""
        return str(self.validator.compute_signature(url, dict(params)))

    def resolve(self, url: str) -> tuple[str, dict[str, str]]:
        """Where to deliver a request for ``url``, and the proxy headers a tunnel would add.

        Routed public URLs go to their local server; ``https``/``wss`` URLs on a loopback
        host are delivered over plain ``http``/``ws``; other URLs are used as they are.
        """
        parts = urlsplit(url)
        plain = _PLAIN_SCHEME.get(parts.scheme, parts.scheme)
        for public, local in self.routes.items():
            public_parts = urlsplit(public)
            prefix = public_parts.path.rstrip("/")
            if parts.netloc != public_parts.netloc or not parts.path.startswith(prefix):
                continue
            local_parts = urlsplit(local)
            path = local_parts.path.rstrip("/") + parts.path[len(prefix):]
            target = urlunsplit((plain, local_parts.netloc, path, parts.query, ""))
            proto = "https" if parts.scheme in ("https", "wss") else "http"
            return target, {"x-forwarded-proto": proto, "x-forwarded-host": parts.netloc}
        if parts.hostname in _LOOPBACK_HOSTS:
            return urlunsplit(parts._replace(scheme=plain)), {}
        return url, {}

    async def send(
        self,
        kind: str,
        call_sid: str,
        url: str,
        params: Mapping[str, str],
        *,
        method: str = "POST",
        signature: str | None = None,
        sign_url: str | None = None,
        unsigned: bool = False,
    ) -> WebhookResult:
        """Make one signed webhook request and record it in ``results``.

        ``signature`` replaces the computed one, ``sign_url`` signs a different URL and
        ``unsigned`` leaves the header out: for tests of the application's validation.
        """
        method = method.upper()
        sent_params = {k: v for k, v in params.items() if v is not None}
        called_url, body = url, sent_params
        if method == "GET":
            called_url, body = _with_query(url, sent_params), {}
        target, headers = self.resolve(called_url)
        if not unsigned:
            computed = self.sign(sign_url or called_url, body)
            headers["x-twilio-signature"] = signature if signature is not None else computed
        headers["user-agent"] = "TwilioProxy/1.1"
        result = WebhookResult(
            kind, call_sid, url, method, sent_params, headers.get("x-twilio-signature"), None
        )
        try:
            response = await self._client.request(
                method, target, data=body or None, headers=headers
            )
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        else:
            result.status = response.status_code
            result.body = response.text
        self.results.append(result)
        self._on_result()
        return result

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _with_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"
