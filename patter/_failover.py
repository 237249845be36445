"""Fallback vendors: ``stt=``, ``llm=`` or ``tts=`` given as a list fails over, for the rest of
the call, to the next vendor when one fails, and the work in flight moves with it.

Built on Pipecat's ``ServiceSwitcher`` (one active service among several, frames gated to
it). Its ``ServiceSwitcherStrategyFailover`` is not enough for a phone call, and
``FailoverSwitcher`` adds what it lacks:

- Pipecat switches only when the active service becomes *unusable* (a permanent error such
  as a bad key, or a service that gave up reconnecting). An ordinary vendor failure — an
  HTTP 500 after the SDK's own retries, a stream that never answers — leaves the failed
  service active, and the next turn fails the same way. Here any error of the active
  service retires it (except an application error, e.g. a tool's, which says nothing about
  the vendor). Patter's own Deepgram and ElevenLabs services reconnect by themselves and
  report an error only once they give up (``patter._deepgram``, ``patter._elevenlabs``).
- Pipecat hands nothing over: what the failed service was doing is lost. Here the LLM's
  unanswered request (no text or tool call came out yet) is asked again of the next LLM,
  and the TTS sentence being synthesised when the TTS failed (and any the retired TTS
  still had queued) is spoken by the next TTS. An STT's successor takes the caller's audio
  from the switch on; audio already given to the failed STT is not replayed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    ErrorCategory,
    ErrorFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMContext,
    LLMContextFrame,
    LLMTextFrame,
    ServiceSwitcher,
    ServiceSwitcherStrategyFailover,
    TTSService,
    TTSSpeakFrame,
    TTSStoppedFrame,
)

logger = get_logger(__name__)

HandOver = Callable[[FrameProcessor, FrameProcessor], Awaitable[None]]
SEEN_FRAMES = 4096
"""Frame ids a switcher remembers to let one copy of a frame out of its branches."""


def with_fallbacks(services: list[Any], kind: str) -> Any:
    """The one service, or a ``FailoverSwitcher`` over several (in failover order)."""
    return services[0] if len(services) == 1 else FailoverSwitcher(services, kind=kind)


class FailoverOnAnyError(ServiceSwitcherStrategyFailover):
    """Pipecat's failover strategy, switching on any vendor error of the active service.

    The failed service is marked unusable for the rest of the call; the next usable one in
    list order takes over. A service that becomes unusable by itself (gave up reconnecting,
    too many silent TTS contexts) is left the same way. The last usable service is never
    retired for an ordinary error (its error goes on up, as with a single vendor, and its
    next turn may work). ``hand_over(failed, successor)`` runs after each switch.
    """

    def __init__(self, services: list[FrameProcessor]) -> None:
        super().__init__(services)
        self.hand_over: HandOver | None = None
        for service in services:
            service.add_event_handler("on_usable_changed", self._on_usable_changed)

    async def handle_error(self, error: ErrorFrame) -> FrameProcessor | None:
        """Retire the active service on a vendor error; the successor, or None."""
        failed = error.processor or self.active_service
        if failed is not self.active_service or error.category is ErrorCategory.APPLICATION:
            return None
        if self._successor(failed) is None:
            return None  # nothing to fail over to: it stays, as a single vendor would
        logger.warning(
            "vendor failed; the next one takes over for the rest of the call",
            extra={"service": failed.name, "error": str(error.error)[:200]},
        )
        await failed.set_usable(False)
        return await self._fail_over(failed)

    async def _on_usable_changed(self, service: FrameProcessor, is_usable: bool) -> None:
        if not is_usable and service is self.active_service:
            logger.warning("vendor gave up; the next one takes over for the rest of the call",
                           extra={"service": service.name})
            await self._fail_over(service)

    def _successor(self, failed: FrameProcessor) -> FrameProcessor | None:
        index = self.services.index(failed)
        later_first = self.services[index + 1:] + self.services[:index]
        return next((service for service in later_first if service.is_usable), None)

    async def _fail_over(self, failed: FrameProcessor) -> FrameProcessor | None:
        if failed is not self.active_service:
            return self.active_service  # already replaced
        successor = self._successor(failed)
        if successor is None or not await self._set_active_if_available(successor):
            logger.error("every fallback vendor failed", extra={"service": failed.name})
            return None
        if self.hand_over is not None:
            await self.hand_over(failed, successor)
        return successor


class FailoverSwitcher(ServiceSwitcher[FailoverOnAnyError]):
    """The ``kind`` (``"stt"``, ``"llm"`` or ``"tts"``) services of one call, first one
    active; on failure the next takes over and the work in flight is handed to it (see the
    module docstring)."""

    def __init__(self, services: list[Any], *, kind: str) -> None:
        super().__init__(services, strategy_type=FailoverOnAnyError)
        self._kind = kind
        self.strategy.hand_over = self._hand_over
        # LLM: the context of the last request not answered yet (no text, no tool call).
        self._unanswered: LLMContext | None = None
        # TTS: the last sentence asked of the active TTS and not finished (no stop) yet.
        self._speaking: tuple[TTSService, str, str] | None = None
        if kind == "tts":
            for service in services:
                service.add_event_handler("on_tts_request", self._on_tts_request)
        self._seen_order: deque[int] = deque()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Note the work given to the active service, then route the frame (Pipecat)."""
        if isinstance(frame, InterruptionFrame):
            self._unanswered, self._speaking = None, None  # an interrupted turn is not redone
        elif isinstance(frame, LLMContextFrame):  # a turn's, or a tool result's (upstream)
            self._unanswered = frame.context
        await super().process_frame(frame, direction)

    async def push_frame(
        self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM
    ) -> None:
        """Note what the active service has done, then push the frame on (Pipecat)."""
        if isinstance(frame, (LLMTextFrame, FunctionCallsStartedFrame)):
            self._unanswered = None
        elif isinstance(frame, TTSStoppedFrame) and self._speaking is not None:
            if frame.context_id == self._speaking[1]:
                self._speaking = None
        await super().push_frame(frame, direction)

    async def _parallel_push_frame(self, frame: Frame, direction: FrameDirection) -> None:
        # Pipecat's ParallelPipeline remembers the id of every frame it ever let out (each
        # 20 ms of audio: ~10 MB over an hour's call). The copies of one frame leave the
        # branches together, so the most recent ids are enough.
        seen = frame.id in self._seen_ids
        await super()._parallel_push_frame(frame, direction)
        if not seen:
            self._seen_order.append(frame.id)
            if len(self._seen_order) > SEEN_FRAMES:
                self._seen_ids.discard(self._seen_order.popleft())

    async def _on_tts_request(self, tts: TTSService, context_id: str, text: str) -> None:
        active = self.strategy.active_service
        if tts is active:
            self._speaking = (tts, context_id, text)
        elif not tts.is_usable and active.is_usable:
            # A sentence the retired TTS had queued before the switch: it will not say it.
            await active.queue_frame(TTSSpeakFrame(text))

    async def _hand_over(self, failed: FrameProcessor, successor: FrameProcessor) -> None:
        if self._kind == "llm" and self._unanswered is not None:
            context, self._unanswered = self._unanswered, None
            logger.info("asking the next llm", extra={"service": successor.name})
            await successor.queue_frame(LLMContextFrame(context))
        elif self._kind == "tts" and self._speaking is not None and self._speaking[0] is failed:
            text = self._speaking[2]
            self._speaking = None
            logger.info("the next tts says the failed sentence", extra={"service": successor.name})
            await successor.queue_frame(TTSSpeakFrame(text))
