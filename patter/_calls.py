"""One owner for each call's state: a ``CallEntry`` per CallSid, kept in a ``CallRegistry``.

The server asks the registry whenever Twilio talks about a call: the voice webhook adds
(or finds) the entry, the media stream claims it once, and the status, AMD and
recording webhooks look it up by CallSid. The entry holds what the call is (who, which
way, its agent, callbacks and options) and what Twilio reported about it (status, AMD
verdict, recording); the call's ``CallSession`` reads those results when it builds
``on_call_end``. The entry delivers ``on_call_end`` exactly once, whichever path ends the
call: the session of a connected call, or the entry itself for a call that never
streamed (busy, no answer, failed, canceled, answered but never streamed, shutdown).

``CallRegistry`` is the seam for running several instances behind one number:
``InMemoryCallRegistry`` for one instance, ``patter._cluster_registry.ClusterCallRegistry``
(entries in memory, which instance holds which call in Redis) for a cluster.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from patter import _amd as amd
from patter._callbacks import fire
from patter._events import Event
from patter._log import get_logger

if TYPE_CHECKING:
    from patter._agent import Agent
    from patter._call_state import CallInfo, CallOptions
    from patter._callbacks import Callbacks
    from patter._events import History
    from patter._session import CallSession

logger = get_logger(__name__)

FINAL_CALL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
"""Twilio call statuses after which nothing more happens to a call."""
MAX_ENDED_ENTRIES = 10_000
"""Ended calls kept for a recording callback still to come; the oldest are dropped first."""


@dataclass(eq=False)
class CallEntry:
    """Everything known about one call, from its first webhook to its last callback.

    Attributes:
        info: Who is on the call and which way it goes.
        agent: The agent that talks on this call.
        callbacks: The callbacks of this call (``call()``'s merged over ``serve()``'s).
        options: Per-call behaviour (hold for AMD, recording, limits).
        placed: Whether this server placed the call (``Patter.call()``); only placed
            calls follow status callbacks and AMD, and end without a stream.
        voicemail_message: What to leave on an answering machine (placed calls).
        status: Twilio's latest status of a placed call.
        answered_by: The latest AMD report (``machine_start`` included), or None.
        voicemail_left: Whether a voicemail was heard to its end.
        recording: The call's recording as known now, or None.
        streaming: Set once a media stream with a valid token has claimed the call.
        answered_at: When the voice webhook answered it (monotonic), or None.
        session: The session running the call once its stream has started.
    """

    info: CallInfo
    agent: Agent
    callbacks: Callbacks
    options: CallOptions
    placed: bool = False
    voicemail_message: str = ""
    status: str = "queued"
    answered_by: str | None = None
    voicemail_left: bool = False
    recording: dict[str, Any] | None = None
    streaming: bool = False
    answered_at: float | None = None
    session: CallSession | None = None
    _verdict: str | None = field(default=None, init=False, repr=False)
    _verdict_task: asyncio.Task[None] | None = field(default=None, init=False, repr=False)
    _recording_open: bool = field(default=False, init=False, repr=False)
    _ending: bool = field(default=False, init=False, repr=False)
    _end: asyncio.Future[Event] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._recording_open = self.options.record
        self._end = asyncio.get_running_loop().create_future()

    @property
    def call_sid(self) -> str:
        """Twilio's CallSid."""
        return self.info.call_sid

    @property
    def ended(self) -> bool:
        """Whether ``on_call_end`` is delivered or being delivered (no other end will be)."""
        return self._ending

    @property
    def end_delivered(self) -> bool:
        """Whether ``on_call_end`` has run."""
        return self._end.done()

    @property
    def awaiting_recording(self) -> bool:
        """Whether Twilio may still report on this call's recording."""
        return self._recording_open

    def answered(self) -> None:
        """The voice webhook answered the call (the first answer counts)."""
        if self.answered_at is None:
            self.answered_at = time.monotonic()

    def attach(self, session: CallSession) -> None:
        """The call's session is about to run; an AMD verdict already in is acted on now."""
        self.session = session
        if self._verdict is not None and not self._ending:
            self._act(session, self._verdict)

    # ----- what Twilio reports ----------------------------------------------------------

    def status_reported(self, status: str) -> bool:
        """A status callback of a placed call; True if the status is final."""
        self.status = status
        logger.info("call status", extra={"call_sid": self.call_sid, "status": status})
        return status in FINAL_CALL_STATUSES

    def verdict_reported(self, answered_by: str) -> None:
        """An AMD report: the first final verdict is acted on once the session is there."""
        if self._verdict is not None or self._ending:  # one verdict per call
            return
        self.answered_by = answered_by
        if not amd.is_final(answered_by):
            return
        self._verdict = answered_by
        if self.session is not None:
            self._act(self.session, answered_by)

    def record_voicemail_left(self, left: bool) -> None:
        """Whether the voicemail was heard to its end (it goes into ``on_call_end``)."""
        self.voicemail_left = left

    def recording_started(self, sid: str, url: str) -> None:
        """Twilio accepted the recording request (a status callback may have come first)."""
        if self.recording is None or self.recording.get("sid") != sid:
            self.recording = {"sid": sid, "url": url, "status": "in-progress", "duration": None}

    def recording_failed(self, error: str) -> None:
        """Twilio refused to record the call; nothing more will come about it."""
        self.recording = {"status": "failed", "error": error}
        self._recording_open = False

    def recording_reported(self, recording: dict[str, Any], *, final: bool) -> None:
        """A recording status callback."""
        self.recording = recording
        if final:
            self._recording_open = False

    # ----- the end ----------------------------------------------------------------------

    def event(self, history: History | None = None, **fields: Any) -> Event:
        """An event of this call: its identity and ``history``, plus ``fields``."""
        return Event(
            call_sid=self.info.call_sid,
            caller=self.info.caller,
            callee=self.info.callee,
            direction=self.info.direction,
            history=history.snapshot() if history is not None else [],
            **fields,
        )

    def end_fields(self) -> dict[str, Any]:
        """What Twilio reported, for the ``on_call_end`` event of a connected call."""
        fields: dict[str, Any] = {}
        if self.placed:
            fields.update(
                status="completed",
                answered_by=self.answered_by,
                voicemail_left=self.voicemail_left,
            )
        if self.recording is not None:
            fields["recording"] = self.recording
        return fields

    async def end(self, event: Event) -> None:
        """Deliver ``on_call_end`` with ``event``; every later call does nothing."""
        if self._ending:
            return
        self._ending = True
        if self._verdict_task is not None:
            self._verdict_task.cancel()
        await fire(self.callbacks.on_call_end, event)
        self._end.set_result(event)

    async def end_unconnected(self, ended_by: str) -> None:
        """End a call that no session ran, with ``ended_by``: a placed call's final status,
        ``shutdown``, or ``error`` (its stream came but its session could not start)."""
        fields: dict[str, Any] = {}
        if self.placed:
            fields.update(
                status=ended_by if ended_by in FINAL_CALL_STATUSES else self.status,
                answered_by=self.answered_by,
                voicemail_left=False,
            )
        await self.end(
            self.event(transcript=[], duration=0.0, ended_by=ended_by, transfer_to=None,
                       errors=[], **fields)
        )

    async def wait_end(self) -> Event:
        """Wait until ``on_call_end`` has run; returns its event."""
        return await asyncio.shield(self._end)

    def _act(self, session: CallSession, answered_by: str) -> None:
        self._verdict_task = asyncio.ensure_future(self._act_safely(session, answered_by))

    async def _act_safely(self, session: CallSession, answered_by: str) -> None:
        try:
            await amd.act_on_verdict(self, session, answered_by)
        except Exception:
            logger.exception("acting on the answering machine verdict failed; hanging up")
            await session.hang_up("error")


class CallRegistry(Protocol):
    """Where the server finds a call's entry by CallSid."""

    def registering(self) -> AbstractAsyncContextManager[None]:
        """Hold lookups of unknown calls while a call is being placed: its CallSid is
        learned inside, so a webhook racing the REST answer still finds the entry."""

    async def add(self, entry: CallEntry) -> CallEntry:
        """Keep ``entry`` unless its CallSid has one; returns the entry kept."""

    async def get(self, call_sid: str) -> CallEntry | None:
        """The entry of ``call_sid``, or None for an unknown call."""

    async def claim_stream(self, call_sid: str) -> bool:
        """Mark the call as streaming; False if a stream claimed it already (or it is
        unknown)."""

    async def remove(self, call_sid: str) -> None:
        """Forget the call (nothing happens for an unknown one)."""

    async def entries(self) -> list[CallEntry]:
        """Every entry kept, oldest first."""


class InMemoryCallRegistry:
    """A ``CallRegistry`` in this process's memory.

    Ended calls kept for a recording callback still to come are dropped oldest first
    beyond ``max_ended``.
    """

    def __init__(self, *, max_ended: int = MAX_ENDED_ENTRIES) -> None:
        self._entries: dict[str, CallEntry] = {}
        self._placing = asyncio.Lock()
        self._max_ended = max_ended

    @asynccontextmanager
    async def registering(self) -> AsyncIterator[None]:
        """See ``CallRegistry.registering``."""
        async with self._placing:
            yield

    async def add(self, entry: CallEntry) -> CallEntry:
        """See ``CallRegistry.add``."""
        kept = self._entries.setdefault(entry.call_sid, entry)
        ended = [sid for sid, known in self._entries.items() if known.ended]
        for sid in ended[: max(0, len(ended) - self._max_ended)]:
            del self._entries[sid]
        return kept

    async def get(self, call_sid: str) -> CallEntry | None:
        """See ``CallRegistry.get``."""
        entry = self._entries.get(call_sid)
        if entry is None and self._placing.locked():
            async with self._placing:
                entry = self._entries.get(call_sid)
        return entry

    async def claim_stream(self, call_sid: str) -> bool:
        """See ``CallRegistry.claim_stream``."""
        entry = self._entries.get(call_sid)
        if entry is None or entry.streaming:
            return False
        entry.streaming = True
        return True

    async def remove(self, call_sid: str) -> None:
        """See ``CallRegistry.remove``."""
        self._entries.pop(call_sid, None)

    async def entries(self) -> list[CallEntry]:
        """See ``CallRegistry.entries``."""
        return list(self._entries.values())
