"""Keypad presses as user text the LLM can read: ``[DTMF: 1]``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from patter._pipecat import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    InputDTMFFrame,
    LLMMessagesAppendFrame,
)

DigitCallback = Callable[[str], Awaitable[None]]


def dtmf_text(digit: str) -> str:
    """The user message for one key: ``[DTMF: 5]``."""
    return f"[DTMF: {digit}]"


class DtmfInjector(FrameProcessor):
    """Turn each keypad press into a user message and a response, like a spoken turn.

    Consumes: ``InputDTMFFrame``.
    Emits: an interruption first if the agent is speaking (a keypress is barge-in), then
    ``LLMMessagesAppendFrame([{"role": "user", "content": "[DTMF: 1]"}], run_llm=True)``
    at once (no aggregation); calls ``on_digit("1")`` if given.
    Passes through: every other frame, unchanged and in order.
    Place it before the user context aggregator.
    """

    def __init__(self, *, on_digit: DigitCallback | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_digit = on_digit
        self._bot_speaking = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Inject DTMF as text; track whether the agent is speaking."""
        await super().process_frame(frame, direction)
        if isinstance(frame, BotStartedSpeakingFrame):
            self._bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._bot_speaking = False
        if isinstance(frame, InputDTMFFrame) and direction == FrameDirection.DOWNSTREAM:
            digit = frame.button.value
            if self._bot_speaking:
                await self.broadcast_interruption()
            if self._on_digit is not None:
                await self._on_digit(digit)
            await self.push_frame(
                LLMMessagesAppendFrame(
                    messages=[{"role": "user", "content": dtmf_text(digit)}], run_llm=True
                )
            )
            return
        await self.push_frame(frame, direction)
