"""E.164 phone numbers: the one check every part of Patter uses (settings, tools, rules)."""

from __future__ import annotations

import re

from patter.errors import PatterConfigError

E164 = re.compile(r"^\+[1-9][0-9]{6,14}\Z")
"""A whole E.164 number: ``+``, the country code, then the number (ASCII digits only)."""

E164_IN_TEXT = re.compile(r"\+[1-9]\d{6,14}\b")
"""E.164 numbers written inside a text (e.g. the numbers a system prompt allows transfers to)."""


def e164(value: object, setting: str) -> str:
    """``value`` if it is an E.164 number (``+15550001234``); else raise, naming ``setting``."""
    if not isinstance(value, str) or not E164.match(value):
        raise PatterConfigError(
            f"{setting} must be an E.164 phone number like +15550001234 "
            f"(a '+', the country code, then the number, no spaces); got {value!r}."
        )
    return value
