"""Errors raised by Patter.

Hierarchy::

    PatterError(Exception)
    ├── PatterConfigError(PatterError, ValueError)   bad/missing setting; the message names the fix
    └── TwilioError(PatterError)                     a Twilio REST request failed (status, code)

Expected telephony events (a call that already ended, a caller hanging up) are log
lines, never exceptions.
"""

from __future__ import annotations


class PatterError(Exception):
    """Base class of every error Patter raises."""


class PatterConfigError(PatterError, ValueError):
    """A setting is missing or malformed. The message names the setting and the fix."""


class TwilioError(PatterError):
    """A Twilio REST request failed.

    Attributes:
        status: HTTP status code of the response.
        code: Twilio's error code (e.g. 20404), when the response carried one.
    """

    def __init__(self, message: str, *, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
