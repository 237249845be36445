"""Pipecat's OpenAI speech services, with a deadline on each request and one quick retry.

Pipecat 1.14 gives its OpenAI LLM service a deadline and a retry (``retry_timeout_secs``,
``retry_on_timeout``; see ``patter._openai_llm``) but nothing like it to the HTTP STT and
TTS services: they wait for the ``openai`` SDK, whose default is 600 s per request and two
retries with backoff. So here the SDK does not retry (``max_retries=0``: no retry storm,
and no retry outside the deadline) and ``retry_once`` tries a request at most twice, both
tries within the step's deadline (``patter._recovery.StepDeadlines``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, TypeVar

from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService

from patter._log import get_logger
from patter._pipecat import ErrorFrame, Frame, TTSAudioRawFrame
from patter._recovery import StepDeadlines

logger = get_logger(__name__)

T = TypeVar("T")
# HTTP statuses worth a second try: the request was not handled (timeout, conflict, rate
# limit) or the server failed. Other 4xx would fail the same way again.
_RETRYABLE_4XX = frozenset({408, 409, 429})


def retryable(exc: BaseException) -> bool:
    """Whether a failed vendor request may succeed if sent again."""
    status = getattr(exc, "status_code", None)
    return not isinstance(status, int) or status >= 500 or status in _RETRYABLE_4XX


async def retry_once(
    attempt: Callable[[], Awaitable[T]], *, budget_s: float, attempt_s: float, what: str
) -> T:
    """``await attempt()``; if it fails (retryably) or takes over ``attempt_s``, once more
    within what is left of ``budget_s``. The last failure is raised (``TimeoutError`` for
    a missed deadline)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + budget_s
    try:
        return await asyncio.wait_for(attempt(), min(attempt_s, budget_s))
    except Exception as exc:
        if not retryable(exc):
            raise
        logger.info("vendor request failed; trying once more",
                    extra={"request": what, "error": type(exc).__name__})
    remaining = end - loop.time()
    if remaining <= 0:
        raise TimeoutError(f"{what}: the deadline passed before a retry")
    return await asyncio.wait_for(attempt(), remaining)


class DeadlineOpenAISTTService(OpenAISTTService):
    """``OpenAISTTService`` whose transcription of a speech segment is tried at most twice,
    within ``deadlines.stt_s`` of the segment's end. The segment's audio is kept until
    then, so the retry sends the same words."""

    def __init__(self, *, deadlines: StepDeadlines, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Pipecat builds this client itself and has no hook (like the LLM's create_client)
        # to set its retries; with_options makes a copy over the same HTTP pool, so no
        # connection pool is left behind.
        self._client = self._client.with_options(max_retries=0)
        self._deadlines = deadlines
        self._failure: Exception | None = None

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame, None]:
        """Pipecat's transcription, whose ErrorFrame carries the failure (Pipecat's has only
        its text), so the error is classified (server, rate limit, timeout...)."""
        async for frame in super().run_stt(audio):
            if isinstance(frame, ErrorFrame) and self._failure is not None:
                frame.exception, self._failure = self._failure, None
            yield frame

    async def _transcribe(self, audio: bytes) -> Any:
        transcribe = super()._transcribe
        try:
            return await retry_once(lambda: transcribe(audio), budget_s=self._deadlines.stt_s,
                                    attempt_s=self._deadlines.stt_attempt_s,
                                    what="transcription")
        except Exception as exc:
            self._failure = exc
            raise


class DeadlineOpenAITTSService(OpenAITTSService):
    """``OpenAITTSService`` whose sentence is tried again once if it failed, or gave no
    audio within ``deadlines.attempt_s``, before any of its audio came. Audio that came is
    never repeated: a stream cut after it ends the sentence there."""

    def __init__(self, *, deadlines: StepDeadlines, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # As in DeadlineOpenAISTTService: a copy over the same HTTP pool, without retries.
        self._client = self._client.with_options(max_retries=0,
                                                 timeout=deadlines.response_s)
        self._deadlines = deadlines
        self._unspoken: tuple[str, bool] | None = None  # (context id, its append_to_context)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        """Synthesise ``text`` (see the class docstring); a final failure is an ErrorFrame,
        and the sentence is kept out of the LLM context (it was never heard)."""
        self._keep_in_context(True)
        failure: Exception | None = None
        for attempt in (1, 2):
            frames = super().run_tts(text, context_id)
            audio_came = False
            try:
                while True:
                    wait_s = None if audio_came else self._deadlines.attempt_s
                    frame = await asyncio.wait_for(anext(frames), wait_s)
                    if isinstance(frame, ErrorFrame) and not audio_came:
                        failure = RuntimeError(frame.error)
                        break
                    audio_came = audio_came or isinstance(frame, TTSAudioRawFrame)
                    yield frame
            except StopAsyncIteration:
                return
            except Exception as exc:
                if audio_came:
                    logger.warning("speech stream broke after its first audio",
                                   extra={"error": type(exc).__name__})
                    return
                failure = exc
            finally:
                await frames.aclose()
            if attempt == 1 and retryable(failure):
                logger.info("speech request failed; trying once more",
                            extra={"error": type(failure).__name__})
                continue
            break
        self._keep_in_context(False, context_id)
        yield ErrorFrame(error=f"speech failed: {type(failure).__name__}", exception=failure)

    def _keep_in_context(self, keep: bool, context_id: str | None = None) -> None:
        """Whether the sentence being synthesised goes into the LLM context once heard.

        Pipecat queues each sentence's text after its synthesis with its turn's
        ``append_to_context`` (``TTSContext``, read from the private ``_tts_contexts``:
        Pipecat 1.14 has no public way to say a sentence went unspoken), whether or not
        audio came. So a failed sentence switches it off, and the next sentence of the
        turn switches it back.
        """
        if keep:
            if self._unspoken is not None:
                unspoken_id, appended = self._unspoken
                self._unspoken = None
                if (context := self._tts_contexts.get(unspoken_id)) is not None:
                    context.append_to_context = appended
            return
        if context_id is not None and (context := self._tts_contexts.get(context_id)):
            self._unspoken = (context_id, context.append_to_context)
            context.append_to_context = False
