"""When a Twilio REST request is tried again: the policy plugged into the ``twilio`` SDK's
own retrying HTTP session (``aiohttp_retry``, which ``AsyncTwilioHttpClient(max_retries=)``
uses with a policy that retries every 5xx, a created call included).

* 429 (the request was refused, not executed): tried again, whatever the request.
* 5xx: tried again only if repeating the request is harmless — updating or ending a live
  call, starting a recording, configuring a number. Creating a call (``POST Calls.json``) is
  not repeated: the first request may have been executed, and the callee would ring twice.
* At most :data:`ATTEMPTS` tries; the wait before each next try is ``Retry-After`` if the
  answer gave one, else exponential (0.2 s, 0.4 s), and never over :data:`MAX_WAIT_S`, so a
  failing request gives up within about two seconds.
"""

from __future__ import annotations

from aiohttp import ClientResponse
from aiohttp_retry import ExponentialRetry

from patter._log import get_logger

logger = get_logger(__name__)

ATTEMPTS = 3
"""Tries of one request in all (the first included)."""
FIRST_WAIT_S = 0.2
"""Wait before the second try, doubled before each next one."""
MAX_WAIT_S = 1.0
"""Longest wait between two tries, a larger ``Retry-After`` included."""

TOO_MANY_REQUESTS = 429


def is_repeatable(method: str, path: str) -> bool:
    """Whether sending the request twice is harmless (everything but creating a call)."""
    return not (method.upper() == "POST" and path.endswith("/Calls.json"))


def _retry_after_s(response: ClientResponse) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date: the exponential wait applies


class TwilioRetry(ExponentialRetry):
    """The retry options of Patter's Twilio HTTP session (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__(
            attempts=ATTEMPTS,
            start_timeout=FIRST_WAIT_S / 2,  # aiohttp_retry waits start * factor ** attempt
            max_timeout=MAX_WAIT_S,
            factor=2.0,
            statuses={TOO_MANY_REQUESTS},
            retry_all_server_errors=False,
            evaluate_response_callback=self._final,
        )

    @staticmethod
    async def _final(response: ClientResponse) -> bool:
        """True when ``response`` is kept (no new try); 429 never gets here."""
        if response.status < 500:
            return True
        return not is_repeatable(response.method, response.url.path)

    def get_timeout(self, attempt: int, response: ClientResponse | None = None) -> float:
        """The wait before the next try: ``Retry-After`` or exponential, capped."""
        wait = super().get_timeout(attempt, response)
        if response is not None:
            retry_after = _retry_after_s(response)
            wait = min(retry_after, MAX_WAIT_S) if retry_after is not None else wait
            logger.info("twilio request tried again",
                        extra={"status": response.status, "attempt": attempt + 1,
                               "wait_s": round(wait, 3)})
        return wait
