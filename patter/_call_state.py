"""What a call is (``CallInfo``), how it behaves (``CallOptions``) and where it stands
(``CallPhase``, with the transitions a ``CallSession`` may make)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass
class CallInfo:
    """Who is on the call and how it was placed."""

    call_sid: str
    caller: str
    callee: str
    direction: str  # "inbound" | "outbound"


@dataclass
class CallOptions:
    """Per-call behaviour chosen by ``serve()`` / ``call()``."""

    hold_music_url: str
    caller_id: str
    max_duration_s: float | None = None
    hold_until_answered: bool = False
    record: bool = False


class CallPhase(enum.Enum):
    """Where a call stands; only ``CallSession._enter`` changes it, along ``NEXT_PHASES``::

        CONNECTING ───────────── chain runs ─────────────▶ LIVE
        CONNECTING_HELD ─ chain runs ─▶ HELD_FOR_AMD ─ answered() ─▶ LIVE
        CONNECTING_HELD ─ answered() ─▶ CONNECTING   (verdict in before the chain runs)
        LIVE ─ transfer asked ─▶ TRANSFERRING ─ Twilio refused ─▶ LIVE
        any of these ─ hang-up, transfer, stream end, error ─▶ ENDING ─▶ ENDED
    """

    CONNECTING = "connecting"
    """The chain is being built; the agent speaks as soon as it runs."""
    CONNECTING_HELD = "connecting_held"
    """The chain is being built; the agent waits for the answering machine verdict."""
    HELD_FOR_AMD = "held_for_amd"
    """The chain runs; no agent audio, caller input held, until the verdict."""
    LIVE = "live"
    """The conversation runs: disclosure noted, first message queued."""
    TRANSFERRING = "transferring"
    """A transfer was asked of Twilio: the call ends with it, or goes on if Twilio refuses."""
    ENDING = "ending"
    """``ended_by`` is known; the stream and the chain are closing."""
    ENDED = "ended"
    """``on_call_end`` has been handed to the call's entry."""


NEXT_PHASES: dict[CallPhase, frozenset[CallPhase]] = {
    CallPhase.CONNECTING: frozenset({CallPhase.LIVE, CallPhase.ENDING, CallPhase.ENDED}),
    CallPhase.CONNECTING_HELD: frozenset(
        {CallPhase.CONNECTING, CallPhase.HELD_FOR_AMD, CallPhase.ENDING, CallPhase.ENDED}
    ),
    CallPhase.HELD_FOR_AMD: frozenset({CallPhase.LIVE, CallPhase.ENDING, CallPhase.ENDED}),
    CallPhase.LIVE: frozenset({CallPhase.TRANSFERRING, CallPhase.ENDING, CallPhase.ENDED}),
    CallPhase.TRANSFERRING: frozenset({CallPhase.LIVE, CallPhase.ENDING, CallPhase.ENDED}),
    CallPhase.ENDING: frozenset({CallPhase.ENDED}),
    CallPhase.ENDED: frozenset(),
}
