"""ElevenLabs streaming speech that survives its socket dropping, without losing a word.

Pipecat 1.14's ``ElevenLabsTTSService`` reconnects at once after its socket dies, but the
text it had sent on the dead socket and not heard back as audio is gone: ElevenLabs keeps
contexts per connection, and Pipecat closes the open ones (``_close_connection_contexts``)
and sends nothing again. The caller hears the sentence stop in the middle, or not at all.
It also reports each drop as an ``ErrorFrame``, so a fallback list
(``patter._failover``, which retires a vendor on any error) would leave a vendor that is
reconnecting.

``ResendingElevenLabsTTSService`` keeps, per open context, the text sent on the current
socket and how many of its words came back with audio (their timestamps), and after a
reconnect speaks the rest again: from the first word whose audio had not arrived. A drop
that it recovers from is logged, not reported; giving up still is (the service is then
unusable, for a fallback to take over).
"""

from __future__ import annotations

from typing import Any

from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

from patter._log import get_logger
from patter._pipecat import ErrorFrame, TTSSpeakFrame

logger = get_logger(__name__)


class ResendingElevenLabsTTSService(ElevenLabsTTSService):
    """``ElevenLabsTTSService`` that re-sends, after a reconnect, what the dead socket did
    not voice. Takes ``ElevenLabsTTSService``'s arguments."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._asked: dict[str, str] = {}  # open context id → text sent on this socket
        self._voiced: dict[str, int] = {}  # open context id → its words that came with audio
        self._unsaid: list[str] = []  # to speak once reconnected
        self._moved: set[str] = set()  # contexts closed by a reconnect, said again in new ones

    async def _send_text(self, text: str, context_id: str) -> None:
        if self._websocket and context_id:
            self._asked[context_id] = f"{self._asked.get(context_id, '')} {text}"
            self._voiced.setdefault(context_id, 0)
        await super()._send_text(text, context_id)

    async def add_word_timestamps(
        self,
        word_times: list[tuple[str, float]],
        context_id: str | None = None,
        includes_inter_frame_spaces: bool | None = None,
        pre_merge_tokens: bool = False,
    ) -> None:
        """Count the words that came back with audio, then time them (Pipecat)."""
        if context_id in self._voiced:
            self._voiced[context_id] += sum(1 for word, _ in word_times if word.strip())
        await super().add_word_timestamps(
            word_times, context_id, includes_inter_frame_spaces, pre_merge_tokens
        )

    async def remove_audio_context(self, context_id: str | None) -> None:
        """Forget a context that is done (Pipecat removes it on ``isFinal``)."""
        self._forget(context_id)
        await super().remove_audio_context(context_id)

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        """Forget an interrupted context: what it did not say is not said later."""
        self._forget(context_id)
        await super().on_audio_context_interrupted(context_id)

    async def _reconnect_websocket(self, attempt_number: int) -> bool:
        for context_id, text in self._asked.items():
            words = text.split()
            rest = " ".join(words[self._voiced.get(context_id, 0):])
            if rest and self.audio_context_available(context_id):
                self._unsaid.append(rest)
                self._moved.add(context_id)
        self._asked.clear()
        self._voiced.clear()
        reconnected = await super()._reconnect_websocket(attempt_number)
        if reconnected and self._unsaid:
            logger.info("elevenlabs reconnected; saying again what the socket lost",
                        extra={"words": sum(len(text.split()) for text in self._unsaid)})
            for text in self._unsaid:
                await self.queue_frame(TTSSpeakFrame(text))
            self._unsaid.clear()
        return reconnected

    async def _report_error(
        self, error: ErrorFrame, force_treat_as_permanent: bool = False
    ) -> None:
        if not force_treat_as_permanent:  # a drop it reconnects from is not a failure
            logger.warning("elevenlabs socket lost; reconnecting",
                           extra={"error": str(error.error)[:200]})
            return
        await super()._report_error(error, force_treat_as_permanent)

    async def _record_context_audio_outcome(self, context_id: str, received_audio: bool) -> None:
        # Pipecat counts a context that ends with no audio as a failure (an ErrorFrame, which
        # would retire this vendor from a fallback list); one whose text moved to a new
        # context after a reconnect did not fail.
        if context_id in self._moved:
            self._moved.discard(context_id)
            return
        await super()._record_context_audio_outcome(context_id, received_audio)

    def _forget(self, context_id: str | None) -> None:
        if context_id is not None:
            self._asked.pop(context_id, None)
            self._voiced.pop(context_id, None)
