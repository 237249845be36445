"""Validating what a live Media Stream sends after ``start``: one typed event, or a reason to skip.

Every field of every message is untrusted. ``parse_event`` reads only the fields Patter
uses and checks each one's type and shape; anything else (``sequenceNumber``, ``chunk``,
``timestamp``, ``streamSid``…) is ignored, so a wrong type there costs nothing. A message
that cannot be used raises ``MalformedMessage``: the receive loop logs it (through
``SkippedMessages``, rate-limited) and reads on — bad input never ends a call.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from patter._log import get_logger
from patter._pipecat import KeypadEntry

logger = get_logger(__name__)

INBOUND_TRACKS = ("inbound", "inbound_track")
MARK_NAME = re.compile(r"[0-9]{1,15}")
"""The marks Patter sends are playout positions in whole milliseconds (``PlayoutLedger``)."""
LOGGED_IN_FULL = 5
LOG_EVERY = 1000


class MalformedMessage(Exception):
    """A message that cannot be used; it is skipped, the stream goes on.

    The text is a short fixed reason, safe to log (never payload content).
    """


@dataclass(frozen=True)
class CallerAudio:
    """``media`` on the inbound track: raw 8 kHz mu-law, at least one byte."""

    ulaw: bytes


@dataclass(frozen=True)
class KeyPressed:
    """``dtmf``: one valid keypad key."""

    key: KeypadEntry


@dataclass(frozen=True)
class MarkEchoed:
    """``mark``: Twilio has played the audio sent before the mark ``name`` (a name of the
    shape Patter sends: ``MARK_NAME``)."""

    name: str


@dataclass(frozen=True)
class StreamStopped:
    """``stop``: the call (or its stream) is over. Accepted whatever its body."""


StreamEvent = CallerAudio | KeyPressed | MarkEchoed | StreamStopped


def parse_event(message: Any) -> StreamEvent:
    """The event in ``message`` (a decoded JSON value), or ``MalformedMessage``.

    ``connected`` and ``start`` are the handshake (``MediaStreamSocket.read_start``), so
    here they are out of order and skipped like any unknown event.
    """
    if not isinstance(message, dict):
        raise MalformedMessage("message is not a JSON object")
    event = message.get("event")
    if not isinstance(event, str):
        raise MalformedMessage("event missing or not a string")
    if event == "media":
        return _media(_body(message, "media"))
    if event == "dtmf":
        return _dtmf(_body(message, "dtmf"))
    if event == "mark":
        return _mark(_body(message, "mark"))
    if event == "stop":
        return StreamStopped()
    if event in ("connected", "start"):
        raise MalformedMessage(f"{event!r} after the stream started")
    raise MalformedMessage("unknown event")


def _body(message: dict[str, Any], name: str) -> dict[str, Any]:
    body = message.get(name)
    if not isinstance(body, dict):
        raise MalformedMessage(f"{name} event without a {name} object")
    return body


def _media(media: dict[str, Any]) -> CallerAudio:
    track = media.get("track", "inbound")
    if track not in INBOUND_TRACKS:
        raise MalformedMessage("media of a track other than inbound")
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise MalformedMessage("media payload missing or not a string")
    try:
        ulaw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise MalformedMessage("media payload is not base64") from None
    if not ulaw:
        raise MalformedMessage("media payload is empty")
    return CallerAudio(ulaw)


def _dtmf(dtmf: dict[str, Any]) -> KeyPressed:
    digit = dtmf.get("digit")
    if not isinstance(digit, str):
        raise MalformedMessage("dtmf digit missing or not a string")
    try:
        return KeyPressed(KeypadEntry(digit))
    except ValueError:
        raise MalformedMessage("dtmf digit is not a keypad key") from None


def _mark(mark: dict[str, Any]) -> MarkEchoed:
    name = mark.get("name")
    if not isinstance(name, str):
        raise MalformedMessage("mark name missing or not a string")
    if not MARK_NAME.fullmatch(name):
        raise MalformedMessage("mark name is not one Patter sends")
    return MarkEchoed(name)


class SkippedMessages:
    """Counts skipped messages of one stream and logs them without flooding the log.

    The first ``LOGGED_IN_FULL`` are logged one by one with their reason, then one line per
    ``LOG_EVERY``, and ``close()`` logs the total if any went unlogged.
    """

    def __init__(self) -> None:
        self.count = 0

    def note(self, reason: str) -> None:
        """One more message skipped, for ``reason``."""
        self.count += 1
        if self.count <= LOGGED_IN_FULL:
            logger.warning(
                "malformed media stream message skipped",
                extra={"reason": reason, "skipped": self.count},
            )
            if self.count == LOGGED_IN_FULL:
                logger.warning("further malformed media stream messages are only counted")
        elif self.count % LOG_EVERY == 0:
            logger.warning("malformed media stream messages skipped",
                           extra={"skipped": self.count})

    def close(self) -> None:
        """Log the total when the stream ends, if some skips were only counted."""
        if self.count > LOGGED_IN_FULL and self.count % LOG_EVERY:
            logger.warning("malformed media stream messages skipped",
                           extra={"skipped": self.count})
