"""Speculative replies: the LLM starts on the caller's words while smart-turn still waits.

Smart-turn judges each pause of the caller. When it judges the words unfinished it waits
up to its silence cap (3 s) for more speech; a caller who has in fact finished then waits
that long, plus the LLM's and the TTS's round trips. ``SpeculativeTurnStopStrategy`` starts
the LLM on the transcript as soon as it is in, through Pipecat's own speculation path
(``trigger_user_turn_inference_triggered(speculation=...)``: the inference runs on a
provisional copy of the context, and the ``SpeculationGate`` inside every Pipecat LLM
service holds its answer). When the turn is confirmed the held answer is released at once
and the turn is written to the context without a second inference; when the caller goes on
speaking the speculation is withdrawn (``EagerEndOfTurnCancelFrame``: the LLM request is
cancelled, the held answer dropped) and the turn is answered whole once it ends. A tool
call is never run speculatively: the LLM service withdraws such a speculation itself and
the confirmed turn runs the inference again.
"""

from __future__ import annotations

from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    EagerEndOfTurnCancelFrame,
    Frame,
    TextPartForConcatenation,
    TranscriptionFrame,
    TurnAnalyzerUserTurnStopStrategy,
    UserTurnSpeculation,
    VADUserStartedSpeakingFrame,
    concatenate_aggregated_text,
)

logger = get_logger(__name__)


class SpeculativeTurnStopStrategy(TurnAnalyzerUserTurnStopStrategy):
    """``TurnAnalyzerUserTurnStopStrategy`` that answers a transcript speculatively while
    the turn analyzer has not judged the turn ended (see the module docstring).

    A speculation starts when a final transcript arrives, the caller is silent and the
    analyzer has not said the turn is complete. It is confirmed when the analyzer does
    (the answer is released; the context gets the turn, no second LLM request), withdrawn
    when the caller speaks again, when a new transcript arrives (a new speculation covers
    it), or when the turn ends any other way. ``withdrawn`` counts the withdrawals (each
    cost an LLM request whose answer nobody heard); ``confirmed`` the released answers.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._parts: list[TextPartForConcatenation] = []
        self._speculation: UserTurnSpeculation | None = None
        self._stops = 0
        self.withdrawn = 0
        self.confirmed = 0

    async def process_frame(self, frame: Frame) -> Any:
        """The analyzer's handling, plus: the LLM withdrew the speculation (it wanted a
        tool call), so the confirmed turn must run the inference again."""
        if isinstance(frame, EagerEndOfTurnCancelFrame) and self._speculation is not None:
            logger.debug("speculative reply withdrawn by the LLM (tool call)")
            self._speculation = None
            self.withdrawn += 1
        return await super().process_frame(frame)

    async def trigger_user_turn_stopped(
        self, *, enable_user_speaking_frames: bool | None = None
    ) -> None:
        """End the turn: release the speculative answer if it answers the whole turn,
        else (none, or stale) run the inference on the turn as usual."""
        self._stops += 1
        speculation, self._speculation = self._speculation, None
        if speculation is not None and speculation.text == self._turn_text():
            self.confirmed += 1
            logger.debug("speculative reply confirmed")
            await self.trigger_user_turn_finalized(
                enable_user_speaking_frames=enable_user_speaking_frames,
                confirms_speculation=True,
            )
            return
        if speculation is not None:
            await self._withdraw("the turn's words changed")
        await super().trigger_user_turn_stopped(
            enable_user_speaking_frames=enable_user_speaking_frames
        )

    async def _handle_transcription(self, frame: TranscriptionFrame) -> None:
        if frame.text.strip():
            self._parts.append(TextPartForConcatenation(
                frame.text, includes_inter_part_spaces=frame.includes_inter_frame_spaces))
        stops = self._stops
        await super()._handle_transcription(frame)
        if (self._stops == stops and frame.finalized and self._parts
                and not self._turn_complete and not self._vad_user_speaking):
            await self._speculate()

    async def _handle_vad_user_started_speaking(self, frame: VADUserStartedSpeakingFrame) -> None:
        if self._speculation is not None:
            await self._withdraw("the caller went on speaking")
        await super()._handle_vad_user_started_speaking(frame)

    async def _reset(self) -> None:
        """Turn boundaries: a speculation still open here was never confirmed."""
        if self._speculation is not None:
            await self._withdraw("the turn ended without confirming it")
        self._parts = []
        await super()._reset()

    async def _speculate(self) -> None:
        if self._speculation is not None:
            await self._withdraw("a newer transcript came")
        self._speculation = UserTurnSpeculation(text=self._turn_text())
        logger.debug("speculative reply started")
        await self.trigger_user_turn_inference_triggered(speculation=self._speculation)

    async def _withdraw(self, reason: str) -> None:
        self._speculation = None
        self.withdrawn += 1
        logger.debug("speculative reply withdrawn", extra={"reason": reason})
        await self.trigger_user_turn_speculation_cancelled()

    def _turn_text(self) -> str:
        """The turn's words as the user aggregator writes them to the context."""
        return concatenate_aggregated_text(self._parts)
