"""Keypad presses as user text the LLM can read: ``[DTMF: 1]``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    InputDTMFFrame,
    LLMContextMessage,
    LLMMessagesAppendFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)

logger = get_logger(__name__)

DigitCallback = Callable[[str], Awaitable[None]]


def dtmf_text(digit: str) -> str:
    """The user message for one key: ``[DTMF: 5]``."""
    return f"[DTMF: {digit}]"


class DtmfInjector(FrameProcessor):
    """Turn each keypad press into a user message and a response, like a spoken turn.

    Consumes: ``InputDTMFFrame``.
    Emits: an ``InterruptionFrame`` (both ways) at once if the agent is speaking — a
    keypress is barge-in; then
    ``LLMMessagesAppendFrame([{"role": "user", "content": "[DTMF: 1]"}], run_llm=True)``
    and ``await on_digit("1")``: at once, or — if the caller is in the middle of a spoken
    turn — right after that turn ends, so the LLM reads speech and keys in the order the
    caller gave them. No aggregation: one message per key.
    Watches: ``BotStarted/StoppedSpeakingFrame`` and ``UserStarted/StoppedSpeakingFrame``
    (the user context aggregator broadcasts the latter upstream).
    Passes through: every other frame, unchanged and in order.
    Place it before the user context aggregator.
    """

    def __init__(self, *, on_digit: DigitCallback | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_digit = on_digit
        self._bot_speaking = False
        self._user_speaking = False
        self._pending: list[str] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Inject DTMF as text; track who is speaking."""
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._user_speaking = True
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._user_speaking = False
        if isinstance(frame, InputDTMFFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._on_key(frame.button.value)
            return
        await self.push_frame(frame, direction)
        if isinstance(frame, UserStoppedSpeakingFrame) and self._pending:
            digits, self._pending = self._pending, []
            for digit in digits:
                await self._inject(digit)

    async def _on_key(self, digit: str) -> None:
        if self._bot_speaking:
            await self.broadcast_interruption()
        if self._user_speaking:
            logger.debug("dtmf held until the caller's spoken turn ends", extra={"digit": digit})
            self._pending.append(digit)
            return
        await self._inject(digit)

    async def _inject(self, digit: str) -> None:
        if self._on_digit is not None:
            await self._on_digit(digit)
        message: LLMContextMessage = {"role": "user", "content": dtmf_text(digit)}
        await self.push_frame(LLMMessagesAppendFrame(messages=[message], run_llm=True))
