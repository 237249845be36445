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
from typing import TYPE_CHECKING

from patter._callbacks import fire
from patter._log import get_logger
from patter.errors import TwilioError
from patter.transports.twilio_rest import TwilioRest

if TYPE_CHECKING:
    from patter._calls import CallEntry
    from patter._session import CallSession

logger = get_logger(__name__)

FINAL_STATUSES = frozenset({"completed", "absent", "failed"})


class Recorder:
    """Starts recordings at connect and hands Twilio's recording callbacks to the call's entry.

    Args:
        rest: The Twilio REST client.
        status_url: Public URL of the signed recording status webhook.
    """

    def __init__(self, rest: TwilioRest, status_url: str) -> None:
        self._rest = rest
        self._status_url = status_url

    def start(self, entry: CallEntry, session: CallSession) -> None:
        """Ask Twilio to record the call; its ``on_call_end`` waits for the answer."""
        session.finish_after(asyncio.ensure_future(self._start(entry)))

    async def _start(self, entry: CallEntry) -> None:
        try:
            sid, url = await self._rest.start_recording(entry.call_sid, self._status_url)
        except TwilioError as exc:
            logger.warning("recording could not start", extra={"error": str(exc)})
            entry.recording_failed(str(exc))
            return
        except Exception as exc:  # a recording must never take the call down
            logger.exception("recording could not start")
            entry.recording_failed(repr(exc))
            return
        logger.info("recording started", extra={"recording_sid": sid})
        entry.recording_started(sid, url)

    async def on_status(self, entry: CallEntry, form: dict[str, str]) -> None:
        """A recording status callback for ``entry``'s call; ``on_recording`` hears final ones."""
        status = form.get("RecordingStatus", "")[:20]
        duration = form.get("RecordingDuration", "")
        recording = {
            "sid": form.get("RecordingSid") or None,
            "url": form.get("RecordingUrl") or None,
            "status": status,
            "duration": int(duration) if duration.isascii() and duration.isdigit() else None,
        }
        final = status in FINAL_STATUSES
        entry.recording_reported(recording, final=final)
        logger.info("recording status", extra={"status": status})
        if final:
            history = entry.session.history if entry.session is not None else None
            await fire(entry.callbacks.on_recording, entry.event(history, recording=recording))
