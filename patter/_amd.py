"""Answering-machine detection: what each of Twilio's ``AnsweredBy`` verdicts does to a call.

Calls placed with ``call(machine_detection=True)`` use Twilio's asynchronous AMD with
message-end detection: the call connects at once and the verdict arrives later on the
signed ``/twilio/amd`` webhook. Until then the session holds the agent (no disclosure,
no first message, no audio at all) and holds what the far end says (kept, not lost).

- ``human``, and ``unknown`` (Twilio could not tell in time): the conversation starts —
  disclosure, then the first message; what the callee said meanwhile reaches the LLM.
- ``machine_end_beep``, ``machine_end_silence``, ``machine_end_other`` (the greeting is
  over): the far end is muted for good, so the greeting that was held is dropped and
  never answered. With a voicemail message, the disclosure and then the message are
  spoken once in the agent's voice, and the call is hung up once they have been heard
  (marks); without one, the call is hung up at once, without a sound.
- ``fax``: hung up at once, silently.
- ``machine_start``: not final; the session keeps holding until the end verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from patter._log import get_logger

if TYPE_CHECKING:
    from patter._calls import CallEntry
    from patter._session import CallSession

logger = get_logger(__name__)

HUMAN = frozenset({"human", "unknown"})
MACHINE_END = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
FAX = "fax"
NOT_FINAL = frozenset({"machine_start"})

AMD_CALL_PARAMS = {"machine_detection": "DetectMessageEnd", "async_amd": "true"}
"""``Calls.json`` parameters for asynchronous, message-end AMD (plus the callback URL)."""


def is_final(answered_by: str) -> bool:
    """Whether ``answered_by`` settles who answered (``machine_start`` does not)."""
    return answered_by not in NOT_FINAL


async def act_on_verdict(entry: CallEntry, session: CallSession, answered_by: str) -> None:
    """Start the conversation, leave ``entry``'s voicemail, or hang up, as the verdict says."""
    logger.info("answering machine verdict", extra={"answered_by": answered_by})
    if answered_by in MACHINE_END or answered_by == FAX:
        await session.stop_listening()
        if entry.voicemail_message and answered_by != FAX:
            await session.answered(speak_first_message=False)
            left = await session.say(entry.voicemail_message)
            entry.record_voicemail_left(left)
            if not left:
                return  # the machine hung up first: the call is already over
        await session.hang_up("agent")
        return
    if answered_by not in HUMAN:
        logger.warning("unexpected answered_by; treating it as a person",
                       extra={"answered_by": answered_by[:40]})
    await session.answered()
