"""Call recording through Twilio's Recordings API, reported in ``on_call_end`` and ``on_recording``.

With ``serve(recording=True)`` or ``call(..., recording=True)``, each call's recording is
started over REST the moment its media stream connects (both channels: the far end and
the agent), with Twilio's recording status callback on the signed ``/twilio/recording``
webhook. The request runs beside the call, so it never delays the first audio.

- ``on_call_end`` carries ``event["recording"]``: ``{"sid", "url", "status", "duration"}``
  as known when the call ended — usually ``"in-progress"``, since Twilio finishes the file
  after the hang-up — or, if the Recordings API refused, ``{"status": "failed",
  "error": "..."}``. A refusal is logged and never drops the call.
- ``on_recording`` fires once per recording when Twilio reports it final (``completed``,
  ``absent`` or ``failed``), with the call's fields and the final ``recording``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from patter._callbacks import Callbacks, fire
from patter._log import get_logger
from patter.errors import TwilioError
from patter.events import Event, History
from patter.session import CallInfo, CallSession
from patter.transports.twilio_rest import TwilioRest

logger = get_logger(__name__)

FINAL_STATUSES = frozenset({"completed", "absent", "failed"})
MAX_TRACKED_CALLS = 10_000


@dataclass
class _Tracked:
    info: CallInfo
    history: History
    end_fields: dict[str, Any]
    callbacks: Callbacks


class Recorder:
    """Starts recordings at connect and routes Twilio's recording callbacks to the call's owner.

    Args:
        rest: The Twilio REST client.
        status_url: Public URL of the signed recording status webhook.
    """

    def __init__(self, rest: TwilioRest, status_url: str) -> None:
        self._rest = rest
        self._status_url = status_url
        self._calls: OrderedDict[str, _Tracked] = OrderedDict()

    def start(self, session: CallSession, callbacks: Callbacks) -> None:
        """Ask Twilio to record ``session``'s call; ``on_call_end`` waits for the answer."""
        self._calls[session.info.call_sid] = _Tracked(
            session.info, session.history, session.end_fields, callbacks
        )
        while len(self._calls) > MAX_TRACKED_CALLS:
            self._calls.popitem(last=False)
        session.finish_after(asyncio.ensure_future(self._start(session)))

    async def _start(self, session: CallSession) -> None:
        try:
            sid, url = await self._rest.start_recording(session.info.call_sid, self._status_url)
        except TwilioError as exc:
            logger.warning("recording could not start", extra={"error": str(exc)})
            session.end_fields["recording"] = {"status": "failed", "error": str(exc)}
            return
        except Exception as exc:  # a recording must never take the call down
            logger.exception("recording could not start")
            session.end_fields["recording"] = {"status": "failed", "error": repr(exc)}
            return
        logger.info("recording started", extra={"recording_sid": sid})
        known = session.end_fields.get("recording")
        if known is None or known.get("sid") != sid:  # a status callback may have come first
            session.end_fields["recording"] = {
                "sid": sid, "url": url, "status": "in-progress", "duration": None,
            }

    async def on_status(self, form: dict[str, str]) -> None:
        """A recording status callback: update the call's end event; report final ones."""
        tracked = self._calls.get(form["CallSid"])
        if tracked is None:
            logger.info("recording callback for an unknown call")
            return
        status = form.get("RecordingStatus", "")[:20]
        duration = form.get("RecordingDuration", "")
        recording = {
            "sid": form.get("RecordingSid") or None,
            "url": form.get("RecordingUrl") or None,
            "status": status,
            "duration": int(duration) if duration.isascii() and duration.isdigit() else None,
        }
        tracked.end_fields["recording"] = recording
        logger.info("recording status", extra={"status": status})
        if status not in FINAL_STATUSES:
            return
        del self._calls[form["CallSid"]]
        event = Event(
            call_sid=tracked.info.call_sid,
            caller=tracked.info.caller,
            callee=tracked.info.callee,
            direction=tracked.info.direction,
            history=tracked.history.snapshot(),
            recording=recording,
        )
        await fire(tracked.callbacks.on_recording, event)
