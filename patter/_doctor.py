"""``patter doctor``: check the settings in the environment, then reach every vendor.

Each setting is checked on its own, so every problem is named with its fix at once. Then,
for the settings that are good: the Twilio account is reached and the number looked up on
it (IncomingPhoneNumbers), each configured vendor's key is tried on a read-only endpoint,
and ``webhook_url`` is asked for Patter's voice webhook. No secret is ever printed.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from patter import _validate
from patter._log import mask_number, redact, register_secret
from patter._server import VOICE_PATH
from patter.errors import PatterConfigError, TwilioError
from patter.transports.twilio_rest import TwilioRest

TIMEOUT_S = 10.0
OPENAI_URL = "https://api.openai.com/v1"
DEEPGRAM_URL = "https://api.deepgram.com"
ELEVENLABS_URL = "https://api.elevenlabs.io"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: ``ok`` None is information, not a problem."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True)
class _Vendor:
    name: str
    setting: str
    base_env: str
    default_url: str
    path: str
    header: Callable[[str], dict[str, str]]


_VENDORS = (
    _Vendor("openai", "openai_key", "OPENAI_BASE_URL", OPENAI_URL, "/models",
            lambda key: {"Authorization": f"Bearer {key}"}),
    _Vendor("deepgram", "deepgram_key", "DEEPGRAM_BASE_URL", DEEPGRAM_URL, "/v1/projects",
            lambda key: {"Authorization": f"Token {key}"}),
    _Vendor("elevenlabs", "elevenlabs_key", "ELEVENLABS_BASE_URL", ELEVENLABS_URL, "/v1/user",
            lambda key: {"xi-api-key": key}),
)


async def run_checks() -> list[Check]:
    """Every check, settings first; the network checks run concurrently."""
    values = {setting: _validate.from_env(None, setting) for setting in _validate.SETTING_ENV}
    for setting in ("twilio_token", "openai_key", "deepgram_key", "elevenlabs_key"):
        register_secret(values[setting])
    checks, good = _setting_checks(values)
    reaches: list[Awaitable[Check]] = []
    if {"twilio_sid", "twilio_token", "phone_number"} <= good.keys():
        reaches.append(_twilio(good, os.environ.get("TWILIO_BASE_URL") or None))
    for vendor in _VENDORS:
        if vendor.setting in good:
            reaches.append(_vendor(vendor, good[vendor.setting]))
    if "webhook_url" in good:
        reaches.append(_webhook(good["webhook_url"]))
    checks += await asyncio.gather(*reaches)
    return [Check(c.name, c.ok, redact(c.detail)) for c in checks]


def _setting_checks(values: dict[str, str | None]) -> tuple[list[Check], dict[str, str]]:
    """Validate each setting alone; returns the checks and the settings that passed."""
    validators: dict[str, Callable[[str], str]] = {
        "twilio_sid": _validate.account_sid,
        "phone_number": lambda v: _validate.e164(v, "phone_number"),
        "webhook_url": lambda v: _validate.http_url(v, "webhook_url", allow_path_file=False),
    }
    checks: list[Check] = []
    good: dict[str, str] = {}
    for setting, value in values.items():
        optional = setting in ("deepgram_key", "elevenlabs_key")
        if optional and not value:
            checks.append(Check(setting, None, f"not set ({_validate.env_hint(setting)}); "
                                               "needed only for that vendor"))
            continue
        try:
            checked = _validate.required(value, setting)
            good[setting] = validators.get(setting, str)(checked)
        except PatterConfigError as exc:
            checks.append(Check(setting, False, str(exc)))
        else:
            checks.append(Check(setting, True, "set"))
    for vendor in _VENDORS:
        base = os.environ.get(vendor.base_env)
        if base:
            try:
                _validate.http_url(base, vendor.base_env, schemes=("http", "https", "ws", "wss"))
            except PatterConfigError as exc:
                checks.append(Check(vendor.base_env, False, str(exc)))
                good.pop(vendor.setting, None)
    return checks, good


async def _twilio(settings: dict[str, str], base_url: str | None) -> Check:
    rest = TwilioRest(settings["twilio_sid"], settings["twilio_token"], base_url=base_url,
                      timeout_s=TIMEOUT_S)
    number = mask_number(settings["phone_number"])
    try:
        sid = await rest.find_number(settings["phone_number"])
    except TwilioError as exc:
        return Check("twilio", False, str(exc))
    except Exception as exc:  # network: DNS, refused, timeout
        return Check("twilio", False, f"unreachable ({type(exc).__name__}): check the network "
                                      "or TWILIO_BASE_URL")
    finally:
        await rest.close()
    if sid is None:
        return Check("twilio", False, f"account reached, but phone_number {number} is not on it: "
                                      "buy or port it in the Twilio Console, or fix PHONE_NUMBER")
    return Check("twilio", True, f"account reached; {number} is on it")


async def _vendor(vendor: _Vendor, key: str) -> Check:
    base = os.environ.get(vendor.base_env) or vendor.default_url
    url = _http(base).rstrip("/") + vendor.path
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.get(url, headers=vendor.header(key))
    except httpx.HTTPError as exc:
        return Check(vendor.name, False, f"unreachable ({type(exc).__name__}): check the "
                                         f"network or {vendor.base_env}")
    env = _validate.env_hint(vendor.setting)
    if response.status_code in (401, 403):
        return Check(vendor.name, False, f"key refused (HTTP {response.status_code}): "
                                         f"check {env}")
    if response.status_code != 200:
        return Check(vendor.name, False, f"answered HTTP {response.status_code} on "
                                         f"{vendor.path}: check {vendor.base_env}")
    return Check(vendor.name, True, "key accepted")


async def _webhook(webhook_url: str) -> Check:
    url = webhook_url + VOICE_PATH
    fix = ("start `patter serve app.py:agent` and your tunnel (e.g. `ngrok http 8000`), then "
           "run doctor again")
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return Check("webhook_url", False, f"no answer ({type(exc).__name__}): {fix}")
    if response.status_code != 405:  # Patter's voice webhook takes POST only
        return Check("webhook_url", False, f"answers HTTP {response.status_code} on {VOICE_PATH}, "
                                           f"not Patter's webhook: {fix}")
    return Check("webhook_url", True, "Patter's voice webhook answers")


def _http(url: str) -> str:
    """The HTTP form of a (possibly WebSocket) base URL."""
    return "http" + url[2:] if url.startswith("ws") else url
