"""Outbound calls: placed through Twilio's Calls API, followed through status callbacks and AMD.

``Patter.call()`` places the call with our signed voice webhook as its ``Url``, so the
answer takes the same secure path as an inbound call (signature, per-call media token);
the call's agent, callbacks and options wait in ``PatterServer.call_overrides`` until its
media stream starts. Status callbacks (initiated, ringing, answered, completed — and
busy, no-answer, failed, canceled as final statuses) arrive on the signed
``/twilio/status`` webhook and AMD verdicts on ``/twilio/amd``; both are matched to the
call here. A verdict may arrive before or after the media stream starts: it is acted on
once both are there (see ``patter.amd``).

``on_call_end`` fires exactly once per call: from the session for a call that connected,
or from here for one that never did (busy, no answer, failed, canceled, or answered but
never streamed), with ``ended_by`` and ``status`` set to Twilio's final status.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

from patter import amd
from patter._callbacks import Callbacks, fire
from patter._log import get_logger, mask_number
from patter.agent import Agent
from patter.errors import TwilioError
from patter.events import Event
from patter.server import AMD_PATH, STATUS_PATH, VOICE_PATH, LiveCall, PatterServer
from patter.session import CallSession

logger = get_logger(__name__)

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
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

    def __init__(self, call_sid: str, to: str) -> None:
        self.call_sid = call_sid
        self.to = to
        self.status = "queued"
        self.answered_by: str | None = None
        self._ended: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def __repr__(self) -> str:
        return (
            f"OutboundCall(call_sid={self.call_sid!r}, to={mask_number(self.to)}, "
            f"status={self.status!r})"
        )

    @property
    def done(self) -> bool:
        """Whether the call is over and ``on_call_end`` has run."""
        return self._ended.done()

    async def wait(self, timeout_s: float | None = None) -> Event:
        """Wait until the call is over; returns the event ``on_call_end`` received.

        Raises ``TimeoutError`` after ``timeout_s`` (the call goes on).
        """
        return await asyncio.wait_for(asyncio.shield(self._ended), timeout_s)

    def _resolve(self, event: Event) -> None:
        if not self._ended.done():
            self._ended.set_result(event)


@dataclass
class _Outbound:
    handle: OutboundCall
    caller: str
    callbacks: Callbacks
    voicemail_message: str
    session: CallSession | None = None
    verdict: str | None = None
    verdict_task: asyncio.Task[None] | None = None
    ended: bool = False


class OutboundCalls:
    """The outbound calls of one server; installs itself on the server's status, AMD and
    session hooks."""

    def __init__(self, server: PatterServer) -> None:
        self._server = server
        self._calls: dict[str, _Outbound] = {}
        self._placing = asyncio.Lock()
        server.on_status = self._on_status
        server.on_amd = self._on_amd
        server.on_session = self._on_session

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
        """Create the call through Twilio's REST API and get ready for its webhooks."""
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
            extra_end_fields={"status": "completed", "voicemail_left": False},
        )
        merged = config.callbacks.merged(callbacks)
        # Status callbacks can race the REST answer: hold them until the call is registered.
        async with self._placing:
            call_sid = await server.rest.create_call(params)
            state = _Outbound(
                handle=OutboundCall(call_sid, to),
                caller=config.phone_number,
                callbacks=merged,
                voicemail_message=voicemail_message or config.voicemail_message,
            )
            self._calls[call_sid] = state
            server.call_overrides[call_sid] = (
                agent,
                replace(merged, on_call_end=lambda event: self._deliver_end(state, event)),
                options,
            )
        logger.info(
            "outbound call placed",
            extra={"call_sid": call_sid, "to": mask_number(to), "amd": machine_detection},
        )
        return state.handle

    async def close(self) -> None:
        """The server is stopping: hang up every call that has not connected yet (it could
        not be answered any more) and end it with ``ended_by="shutdown"``."""
        pending = [s for s in self._calls.values() if s.session is None and not s.ended]
        self._calls.clear()
        for state in pending:
            call_sid = state.handle.call_sid
            self._server.call_overrides.pop(call_sid, None)
            try:
                await self._server.rest.hang_up(call_sid)
            except TwilioError as exc:
                logger.warning("could not hang up a call at shutdown",
                               extra={"call_sid": call_sid, "error": str(exc)})
            await self._deliver_end(state, _unconnected_event(state, "shutdown"))

    # ----- webhooks -------------------------------------------------------------------

    async def _find(self, call_sid: str) -> _Outbound | None:
        state = self._calls.get(call_sid)
        if state is None and self._placing.locked():
            async with self._placing:
                state = self._calls.get(call_sid)
        return state

    async def _on_status(self, form: dict[str, str]) -> None:
        call_sid = form["CallSid"]
        state = await self._find(call_sid)
        if state is None:
            return
        status = form.get("CallStatus", "")[:20]
        state.handle.status = status
        logger.info("call status", extra={"call_sid": call_sid, "status": status})
        if status not in FINAL_STATUSES:
            return
        del self._calls[call_sid]
        if state.session is None:
            self._server.call_overrides.pop(call_sid, None)
            await self._deliver_end(state, _unconnected_event(state, status))

    async def _on_amd(self, form: dict[str, str]) -> None:
        state = await self._find(form["CallSid"])
        if state is None:
            return
        answered_by = form.get("AnsweredBy", "unknown")[:40]
        if state.verdict is not None:  # one verdict per call; repeats change nothing
            return
        state.handle.answered_by = answered_by
        if not amd.is_final(answered_by):
            return
        state.verdict = answered_by
        if state.session is not None:
            self._act(state, state.session, answered_by)

    async def _on_session(self, live: LiveCall, session: CallSession) -> None:
        state = self._calls.get(live.call_sid)
        if state is None or state.ended:
            return
        state.session = session
        if state.verdict is not None:
            self._act(state, session, state.verdict)

    # ----- acting -----------------------------------------------------------------------

    def _act(self, state: _Outbound, session: CallSession, answered_by: str) -> None:
        state.verdict_task = asyncio.ensure_future(
            _act_safely(session, answered_by, state.voicemail_message)
        )

    async def _deliver_end(self, state: _Outbound, event: Event) -> None:
        if state.ended:
            return
        state.ended = True
        if state.verdict_task is not None:
            state.verdict_task.cancel()
        event = Event(**{**event, "answered_by": state.handle.answered_by})
        await fire(state.callbacks.on_call_end, event)
        state.handle._resolve(event)


async def _act_safely(session: CallSession, answered_by: str, voicemail_message: str) -> None:
    try:
        await amd.act_on_verdict(session, answered_by, voicemail_message)
    except Exception:
        logger.exception("acting on the answering machine verdict failed; hanging up")
        await session.hang_up("error")


def _unconnected_event(state: _Outbound, status: str) -> Event:
    """The ``on_call_end`` event of a call that never had a media stream (same fields)."""
    return Event(
        call_sid=state.handle.call_sid,
        caller=state.caller,
        callee=state.handle.to,
        direction="outbound",
        history=[],
        transcript=[],
        duration=0.0,
        ended_by=status,
        transfer_to=None,
        status=status if status in FINAL_STATUSES else state.handle.status,
        answered_by=state.handle.answered_by,
        voicemail_left=False,
    )
