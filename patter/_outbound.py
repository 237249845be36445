"""Outbound calls: placed through Twilio's Calls API, followed through status callbacks and AMD.

``Patter.call()`` places the call with our signed voice webhook as its ``Url``, so the
answer takes the same secure path as an inbound call (signature, per-call media token).
The call's ``CallEntry`` (``patter._calls``: agent, callbacks, options, voicemail
message) goes into the server's registry as soon as Twilio names its CallSid; the
server's ``/twilio/status`` and ``/twilio/amd`` webhooks report to that entry. Status
callbacks: initiated, ringing, answered, completed — and busy, no-answer, failed,
canceled as final statuses. An AMD verdict may arrive before or after the media stream
starts: it is acted on once both are there (see ``patter._amd``).

``on_call_end`` fires exactly once per call, delivered by the entry: with the session's
event for a call that connected, or, for one that never did (busy, no answer, failed,
canceled, or answered but never streamed), with ``ended_by`` and ``status`` set to
Twilio's final status.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from patter import _amd as amd
from patter._agent import Agent
from patter._call_state import CallInfo
from patter._callbacks import Callbacks
from patter._calls import CallEntry
from patter._events import Event
from patter._log import get_logger, mask_number
from patter._server import AMD_PATH, STATUS_PATH, VOICE_PATH, PatterServer
from patter.errors import PatterError, TwilioError

logger = get_logger(__name__)

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class OutboundCall:
    """The handle ``Patter.call()`` returns: one outbound call, followed to its end.

    Attributes:
        call_sid: Twilio's CallSid.
        to: The dialled number.
        status: The latest status Twilio reported: ``queued``, ``initiated``, ``ringing``,
            ``in-progress``, then one of ``completed``, ``busy``, ``no-answer``,
            ``failed``, ``canceled``.
        answered_by: The answering machine verdict (``human``, ``machine_end_beep``, …),
            or None without ``machine_detection``.

    Usage::

        call = await phone.call("+15550009876", agent, machine_detection=True)
        ended = await call.wait()
        print(ended["ended_by"], ended["answered_by"], ended["voicemail_left"])
    """

    def __init__(self, entry: CallEntry) -> None:
        self._entry = entry

    def __repr__(self) -> str:
        return (
            f"OutboundCall(call_sid={self.call_sid!r}, to={mask_number(self.to)}, "
            f"status={self.status!r})"
        )

    @property
    def call_sid(self) -> str:
        """Twilio's CallSid."""
        return self._entry.call_sid

    @property
    def to(self) -> str:
        """The dialled number."""
        return self._entry.info.callee

    @property
    def status(self) -> str:
        """The latest status Twilio reported."""
        return self._entry.status

    @property
    def answered_by(self) -> str | None:
        """The answering machine verdict, or None."""
        return self._entry.answered_by

    @property
    def done(self) -> bool:
        """Whether the call is over and ``on_call_end`` has run."""
        return self._entry.end_delivered

    async def wait(self, timeout_s: float | None = None) -> Event:
        """Wait until the call is over; returns the event ``on_call_end`` received.

        Raises ``TimeoutError`` after ``timeout_s`` (the call goes on).
        """
        return await asyncio.wait_for(self._entry.wait_end(), timeout_s)


class OutboundCalls:
    """Places the outbound calls of one server and ends the unconnected ones at shutdown."""

    def __init__(self, server: PatterServer) -> None:
        self._server = server

    async def place(
        self,
        to: str,
        agent: Agent,
        *,
        callbacks: Callbacks,
        machine_detection: bool,
        voicemail_message: str,
        recording: bool,
    ) -> OutboundCall:
        """Create the call through Twilio's REST API and register it for its webhooks."""
        server, config = self._server, self._server.config
        params: dict[str, Any] = {
            "to": to,
            "from_": config.phone_number,
            "url": server.url(VOICE_PATH),
            "method": "POST",
            "status_callback": server.url(STATUS_PATH),
            "status_callback_method": "POST",
            "status_callback_event": STATUS_EVENTS,
        }
        if machine_detection:
            params.update(amd.AMD_CALL_PARAMS)
            params["async_amd_status_callback"] = server.url(AMD_PATH)
            params["async_amd_status_callback_method"] = "POST"
        options = replace(
            server.default_options(),
            hold_until_answered=machine_detection,
            record=recording or config.recording,
        )
        if server.cluster is not None and not server.cluster.link.up:
            raise PatterError(
                f"Redis ({server.cluster.link.where}) is unreachable, so the call to "
                f"{mask_number(to)} was not placed (the cluster's max_calls cannot be kept); "
                "try again once it is back."
            )
        # Webhooks can race the REST answer: lookups wait until the call is registered.
        async with server.registry.registering():
            call_sid = await server.rest.create_call(params)
            entry = await server.registry.add(
                CallEntry(
                    info=CallInfo(call_sid, config.phone_number, to, "outbound"),
                    agent=agent,
                    callbacks=config.callbacks.merged(callbacks),
                    options=options,
                    placed=True,
                    voicemail_message=voicemail_message or config.voicemail_message,
                )
            )
        logger.info(
            "outbound call placed",
            extra={"call_sid": call_sid, "to": mask_number(to), "amd": machine_detection},
        )
        return OutboundCall(entry)

    async def close(self) -> None:
        """The server is stopping: hang up every placed call that has not connected yet (it
        could not be answered any more) and end it with ``ended_by="shutdown"``."""
        registry = self._server.registry
        pending = [
            entry for entry in await registry.entries()
            if entry.placed and entry.session is None and not entry.ended
        ]
        for entry in pending:
            await registry.remove(entry.call_sid)
            try:
                await self._server.rest.hang_up(entry.call_sid)
            except TwilioError as exc:
                logger.warning("could not hang up a call at shutdown",
                               extra={"call_sid": entry.call_sid, "error": str(exc)})
            await entry.end_unconnected("shutdown")
