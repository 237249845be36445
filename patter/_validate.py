"""Checks for settings and webhook fields, each raising an error that names the fix."""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlsplit

from patter.errors import PatterConfigError

# Settings are checked with the same rule as tool arguments: one home, re-exported here.
from patter.processors._phone_numbers import E164 as E164
from patter.processors._phone_numbers import e164 as e164

CALL_SID = re.compile(r"^CA[0-9a-f]{32}\Z")
INSTANCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}\Z")

SETTING_ENV: dict[str, tuple[str, ...]] = {
    "twilio_sid": ("TWILIO_ACCOUNT_SID", "TWILIO_SID"),
    "twilio_token": ("TWILIO_AUTH_TOKEN", "TWILIO_TOKEN"),
    "openai_key": ("OPENAI_API_KEY", "OPENAI_KEY"),
    "phone_number": ("PHONE_NUMBER",),
    "webhook_url": ("WEBHOOK_URL",),
    "deepgram_key": ("DEEPGRAM_API_KEY",),
    "elevenlabs_key": ("ELEVENLABS_API_KEY",),
}
"""Environment variables a ``Patter()`` setting is read from when not passed, first set wins:
the vendor's conventional name, then the spec's."""


def from_env(value: str | None, setting: str) -> str | None:
    """``value`` if it was passed (not None), else the first of the setting's variables set."""
    if value is not None:
        return value
    return next((os.environ[env] for env in SETTING_ENV[setting] if os.environ.get(env)), None)


def env_hint(setting: str) -> str:
    """``"TWILIO_ACCOUNT_SID (or TWILIO_SID)"``: the variables a setting is read from."""
    first, *others = SETTING_ENV[setting]
    return first + (f" (or {', '.join(others)})" if others else "")


def required(value: object, setting: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise naming the setting and the
    environment variables it is read from."""
    if not isinstance(value, str) or not value.strip():
        raise PatterConfigError(
            f"{setting} is missing: pass Patter({setting}=...) or set {env_hint(setting)}."
        )
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


def instance_id(value: str) -> str:
    """Return ``value`` if it can name an instance in a URL path and a balancer's server
    list, else raise."""
    if not INSTANCE_ID.match(value):
        raise PatterConfigError(
            "instance_id must be 1 to 63 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it ends the media stream URL and is the balancer's server "
            f"name): pass Patter(instance_id='patter-1') or set PATTER_INSTANCE_ID; got {value!r}."
        )
    return value


def default_instance_id() -> str:
    """This host's name, as an instance id (``patter`` if it has none usable)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:63].lstrip("._-")
    return name or "patter"


REDIS_SCHEMES = ("redis", "rediss", "unix")


def redis_url(value: str) -> str:
    """Return ``value`` if it is a Redis URL (``redis://``, ``rediss://`` with a host, or
    ``unix://`` with a path), else raise; the error shows the URL with its password hidden."""
    parts = urlsplit(value)
    wanted = parts.scheme in REDIS_SCHEMES and (
        parts.path if parts.scheme == "unix" else parts.hostname
    )
    if not wanted:
        raise PatterConfigError(
            "redis_url must be a redis://, rediss:// or unix:// URL, e.g. "
            f"redis://:password@redis.internal:6379/0; got {masked_url(value)!r}. "
            "Pass Patter(redis_url=...) or set PATTER_REDIS_URL."
        )
    return value


def masked_url(url: str) -> str:
    """``url`` with the password (or the whole user part) replaced by ``***``, for logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()
