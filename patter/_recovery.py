"""What an agent does when a vendor fails mid-call: its deadlines, its words, when it gives up.

Built and checked by ``Patter.agent(...)``; the call's ``ResponseGuard``
(``patter.processors.response_guard``) and the vendor services act on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from patter.errors import PatterConfigError
from patter.processors._phone_numbers import e164

DEFAULT_RESPONSE_DEADLINE_S = 2.5
DEFAULT_APOLOGY = "Sorry, I'm having trouble right now, one moment…"
DEFAULT_DIDNT_CATCH = "Sorry, I didn't catch that, could you say it again?"
DEFAULT_GOODBYE = "Sorry, I can't help you right now. Please call again later. Goodbye."
DEFAULT_TRANSFER_GOODBYE = "Sorry, I'm having trouble. Let me put you through to a colleague."
DEFAULT_MAX_FAILED_TURNS = 3

MIN_DEADLINE_S, MAX_DEADLINE_S = 1.0, 10.0
# Shares of the response deadline each vendor step may use (see ``StepDeadlines``).
_STT_SHARE = 0.8
_STT_ATTEMPT_SHARE = 0.6  # a long utterance takes a while to transcribe
_FIRST_ATTEMPT_SHARE = 0.4


@dataclass(frozen=True)
class StepDeadlines:
    """Each vendor step's deadline, from one number: the caller's longest silence.

    Attributes:
        response_s: From the caller's end of speech to the agent's first audio; missed,
            the agent apologises (``agent(response_deadline_s=...)``).
        stt_s: From the end of a speech segment to its transcript, retry included; the
            rest of ``response_s`` is left for "didn't catch that" to start.
        stt_attempt_s: One transcription try before it is given up and tried once more.
        attempt_s: One attempt of the LLM (first response) or the TTS (first audio)
            before it is given up and tried once more.
    """

    response_s: float

    @property
    def stt_s(self) -> float:
        """Transcript deadline, retry included."""
        return self.response_s * _STT_SHARE

    @property
    def stt_attempt_s(self) -> float:
        """Deadline of one transcription try."""
        return self.response_s * _STT_ATTEMPT_SHARE

    @property
    def attempt_s(self) -> float:
        """Deadline of one attempt of a step."""
        return self.response_s * _FIRST_ATTEMPT_SHARE


@dataclass(frozen=True)
class Recovery:
    """An agent's behaviour when a vendor fails (see docs/reliability.md).

    Attributes:
        deadlines: The vendor steps' deadlines.
        apology: Said when the LLM or TTS failed a turn (pre-rendered, cached).
        didnt_catch: Said when the caller's words could not be transcribed.
        goodbye: Said before giving up: hanging up, or transferring to ``fallback_number``.
        max_failed_turns: Failed turns in a row after which the agent gives up.
        fallback_number: Where to transfer the caller on giving up (None: hang up).
    """

    deadlines: StepDeadlines = StepDeadlines(DEFAULT_RESPONSE_DEADLINE_S)
    apology: str = DEFAULT_APOLOGY
    didnt_catch: str = DEFAULT_DIDNT_CATCH
    goodbye: str = DEFAULT_GOODBYE
    max_failed_turns: int = DEFAULT_MAX_FAILED_TURNS
    fallback_number: str | None = None

    @property
    def lines(self) -> tuple[str, str, str]:
        """The three sentences rendered ahead: apology, didn't catch, goodbye."""
        return (self.apology, self.didnt_catch, self.goodbye)


def build_recovery(
    *,
    response_deadline_s: float,
    apology: str,
    didnt_catch: str,
    goodbye: str | None,
    max_failed_turns: int,
    fallback_number: str | None,
) -> Recovery:
    """Check the vendor-failure arguments of ``Patter.agent`` and return ``Recovery``."""
    if isinstance(response_deadline_s, bool) or not isinstance(response_deadline_s, (int, float)) \
            or not MIN_DEADLINE_S <= response_deadline_s <= MAX_DEADLINE_S:
        raise PatterConfigError(
            f"agent(response_deadline_s={response_deadline_s!r}) must be a number of seconds "
            f"between {MIN_DEADLINE_S:g} and {MAX_DEADLINE_S:g}: the longest the caller waits "
            f"in silence after speaking before the agent apologises (default "
            f"{DEFAULT_RESPONSE_DEADLINE_S:g})."
        )
    if isinstance(max_failed_turns, bool) or not isinstance(max_failed_turns, int) \
            or not 1 <= max_failed_turns <= 10:
        raise PatterConfigError(
            f"agent(max_failed_turns={max_failed_turns!r}) must be a whole number from 1 to "
            f"10: the failed turns in a row after which the agent gives up (default "
            f"{DEFAULT_MAX_FAILED_TURNS})."
        )
    number = None if fallback_number is None else e164(fallback_number,
                                                       "agent(fallback_number=...)")
    if goodbye is None:
        goodbye = DEFAULT_GOODBYE if number is None else DEFAULT_TRANSFER_GOODBYE
    for setting, text in (("apology", apology), ("didnt_catch", didnt_catch),
                          ("goodbye", goodbye)):
        if not isinstance(text, str) or not text.strip():
            raise PatterConfigError(
                f"agent({setting}=...) must be a sentence the agent can say, got {text!r}: "
                "leave it out for the default wording."
            )
    return Recovery(
        deadlines=StepDeadlines(float(response_deadline_s)),
        apology=apology.strip(),
        didnt_catch=didnt_catch.strip(),
        goodbye=goodbye.strip(),
        max_failed_turns=max_failed_turns,
        fallback_number=number,
    )
