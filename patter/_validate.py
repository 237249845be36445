"""Checks for settings and webhook fields, each raising an error that names the fix."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from patter.errors import PatterConfigError

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
CALL_SID = re.compile(r"^CA[0-9a-f]{32}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}$")


def e164(value: object, setting: str) -> str:
    """Return ``value`` if it is an E.164 number (``+15550001234``), else raise."""
    if not isinstance(value, str) or not E164.match(value):
        raise PatterConfigError(
            f"{setting} must be an E.164 phone number like +15550001234 "
            f"(a '+', the country code, then the number, no spaces); got {value!r}."
        )
    return value


def required(value: object, setting: str, env: str | None = None) -> str:
    """Return ``value`` if it is a non-empty string, else raise naming the setting (and env var)."""
    if not isinstance(value, str) or not value.strip():
        hint = f" or set {env}" if env else ""
        raise PatterConfigError(f"{setting} is missing: pass Patter({setting}=...){hint}.")
    return value.strip()


def account_sid(value: str) -> str:
    """Return ``value`` if it looks like a Twilio Account SID (AC + 32 hex), else raise."""
    if not ACCOUNT_SID.match(value):
        raise PatterConfigError(
            "twilio_sid must be your Twilio Account SID: 'AC' followed by 32 hex characters "
            "(Twilio Console > Account info)."
        )
    return value


def http_url(
    value: str,
    setting: str,
    *,
    allow_path_file: bool = True,
    schemes: tuple[str, ...] = ("http", "https"),
) -> str:
    """Return ``value`` without a trailing slash if it is a URL with a host, else raise."""
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{s}://" for s in schemes)
        raise PatterConfigError(
            f"{setting} must be a {wanted} URL with a host, e.g. "
            f"{schemes[-1]}://abc123.example.com; got {value!r}."
        )
    if parts.query or parts.fragment:
        raise PatterConfigError(
            f"{setting} must not have a query string or fragment; got {value!r}."
        )
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if not allow_path_file and "." in last:
        raise PatterConfigError(
            f"{setting} must be the public base URL of this server "
            f"(e.g. https://abc123.ngrok.app), not a file path; got {value!r}."
        )
    return value.rstrip("/")
