"""No dead air: a caller turn a vendor failed gets a short apology, and the agent listens again."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    FunctionCallsStartedFrame,
    InterruptionFrame,
    LLMFullResponseStartFrame,
    LLMService,
    STTService,
    TTSAudioRawFrame,
    TTSService,
    TTSStartedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from patter.processors.checkpoint import PlayoutCheckpointFrame

logger = get_logger(__name__)

VENDOR_SHARE = 0.8
"""Share of the response deadline the LLM and TTS get at least, from when the LLM is asked."""

SaidCallback = Callable[[str], Awaitable[None]]
GiveUpCallback = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Line:
    """A sentence the agent says without its TTS: the text, and its 16-bit mono PCM."""

    text: str
    audio: bytes


@dataclass(frozen=True)
class RecoveryLines:
    """The sentences rendered ahead for vendor failures, all at ``sample_rate_hz``."""

    apology: Line
    didnt_catch: Line
    goodbye: Line
    sample_rate_hz: int = 8000


class ResponseGuard:
    """Two cooperating processors that see every caller turn answered audibly.

    ``watch()`` (right after the transport input) sees what travels upstream: the VAD's
    end of the caller's speech and the ``ErrorFrame`` of any STT, LLM or TTS service.
    ``voice()`` (right after the TTS) sees the answer being made (``LLMFullResponseStartFrame``,
    ``TTSStartedFrame``, the first ``TTSAudioRawFrame``) and speaks for the agent.

    Once the LLM is asked to answer the caller, the first agent audio is owed by
    ``response_deadline_s`` after the caller's end of speech (and at least
    ``VENDOR_SHARE`` of it after the LLM was asked, however long deciding that the
    caller had finished took). If the LLM or TTS reports a
    failure first, or the deadline passes, the answer in flight is cancelled (an
    interruption: none of it was heard, so none of it enters the history) and the agent
    says ``lines.apology``. A transcription failure gets ``lines.didnt_catch``. Both are
    pre-rendered audio, so they play while the TTS is down; then the agent listens again.
    After ``max_failed_turns`` failed turns in a row it says ``lines.goodbye`` instead and,
    once that was heard, calls ``on_give_up``. A turn whose answer was heard resets the count.

    A tool call ends the watch over a turn (a slow tool is not a vendor failure).

    Args:
        lines: What to say, rendered.
        response_deadline_s: The caller's longest silence after speaking.
        max_failed_turns: Failed turns in a row before giving up.
        on_said: ``await on_said(text)`` once a line is sent (to note it in the history).
        on_give_up: ``await on_give_up()`` once the goodbye was heard.
    """

    def __init__(
        self,
        lines: RecoveryLines,
        *,
        response_deadline_s: float = 2.5,
        max_failed_turns: int = 3,
        on_said: SaidCallback | None = None,
        on_give_up: GiveUpCallback | None = None,
    ) -> None:
        self.lines = lines
        self.response_deadline_s = response_deadline_s
        self.max_failed_turns = max_failed_turns
        self._on_said = on_said
        self._on_give_up = on_give_up
        # Direct mode: the watch only looks, so it runs in the task of the stage before it
        # (the input transport) instead of adding a queue hop to every 40 ms of caller audio.
        self._watch = _Watch(self, enable_direct_mode=True)
        self._voice = _Voice(self)
        self._speech_ended_at: float | None = None  # monotonic, the caller's last end of speech
        self._answered = True  # agent audio came since the caller's end of speech
        self._owed = False  # the LLM was asked; its first audio is awaited
        self._tts_started = False
        self._timer: asyncio.Task[None] | None = None
        self._acting = asyncio.Lock()
        self._counts: Counter[tuple[str, str, str]] = Counter()
        self._own_audio: set[int] = set()
        self.failed_in_a_row = 0
        """Failed turns since the last one answered."""
        self.gave_up = False
        """Whether the goodbye was said (nothing more is said after it)."""

    def watch(self) -> FrameProcessor:
        """Sees caller speech ends and vendor errors (place it first, after the input)."""
        return self._watch

    def voice(self) -> FrameProcessor:
        """Sees the answer being made and speaks the lines (place it right after the TTS)."""
        return self._voice

    def errors(self) -> list[dict[str, Any]]:
        """Vendor failures so far: ``{"step", "vendor", "kind", "count"}`` (no messages, so
        no secret can leak), in the order first seen."""
        return [{"step": step, "vendor": vendor, "kind": kind, "count": count}
                for (step, vendor, kind), count in self._counts.items()]

    # ----- what the processors see ------------------------------------------------------

    def caller_started(self) -> None:
        self._speech_ended_at = None
        self._cancel_timer()

    def caller_stopped(self, stop_secs: float) -> None:
        self._speech_ended_at = time.monotonic() - stop_secs
        self._answered = False
        if self._owed:
            self._arm(self._speech_ended_at)

    def llm_asked(self) -> None:
        if self._answered or self.gave_up:
            return
        self._owed, self._tts_started = True, False
        now = time.monotonic()
        # Deciding that the caller had finished may have taken long (a sentence that
        # sounded unfinished): the vendors still get most of the deadline from now.
        self._arm(max(self._speech_ended_at or now, now - self.response_deadline_s
                      * (1 - VENDOR_SHARE)))

    def tts_started(self) -> None:
        self._tts_started = True

    def audio_made(self, frame: TTSAudioRawFrame) -> None:
        if frame.id in self._own_audio:
            return
        self._answered = True
        if self._owed:
            self._owed = False
            self.failed_in_a_row = 0
            self._cancel_timer()

    def answer_stopped(self) -> None:
        """An interruption or a tool call: this turn's answer is no longer awaited."""
        self._owed = False
        self._cancel_timer()

    def vendor_failed(self, frame: ErrorFrame) -> None:
        step = _step(frame.processor)
        if step is None:
            return
        if step == "tts" and frame.exception is None and not self._owed:
            return  # Pipecat's note that a TTS turn ended with no audio: a failure seen already
        self._counts[(step, _vendor(frame.processor), _kind(frame))] += 1
        if step == "stt":
            # Only words the caller said since the agent last spoke are missed: an STT
            # reconnecting while nobody speaks is no reason to ask them to repeat.
            if not self._answered:
                self._answered = True  # asked once per utterance
                self._voice.create_task(self._fail(step, interrupt=False),
                                        "response_guard_stt")
        elif self._owed:
            self._owed = False
            self._cancel_timer()
            self._voice.create_task(self._fail(step, interrupt=True), "response_guard_failed")

    def stop(self) -> None:
        self._owed = False
        self._cancel_timer()

    # ----- acting -----------------------------------------------------------------------

    def _arm(self, since: float) -> None:
        self._cancel_timer()
        wait_s = max(0.0, since + self.response_deadline_s - time.monotonic())
        self._timer = self._voice.create_task(self._deadline(wait_s), "response_deadline")

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()

    async def _deadline(self, wait_s: float) -> None:
        await asyncio.sleep(wait_s)
        self._timer = None
        if not self._owed:
            return
        self._owed = False
        step = "tts" if self._tts_started else "llm"
        self._counts[(step, _vendor(self._service(step)), "timeout")] += 1
        logger.warning("no agent audio by the response deadline",
                       extra={"step": step, "deadline_s": self.response_deadline_s})
        await self._fail(step, interrupt=True)

    def _service(self, step: str) -> FrameProcessor | None:
        kinds = {"llm": LLMService, "tts": TTSService}
        node = self._voice.previous
        while node is not None and not isinstance(node, kinds[step]):
            node = node.previous
        return node

    async def _fail(self, step: str, *, interrupt: bool) -> None:
        async with self._acting:
            if self.gave_up:
                return
            self.failed_in_a_row += 1
            if interrupt:  # cancel the answer in flight: none of it was heard
                await self._voice.broadcast_interruption()
            giving_up = self.failed_in_a_row >= self.max_failed_turns
            line = self.lines.goodbye if giving_up else (
                self.lines.didnt_catch if step == "stt" else self.lines.apology)
            logger.info("vendor failed a turn; the agent says so",
                        extra={"step": step, "failed_in_a_row": self.failed_in_a_row,
                               "giving_up": giving_up})
            self.gave_up = giving_up
            heard = await self._say(line)
            if giving_up and self._on_give_up is not None:
                self._voice.create_task(self._give_up_when_heard(heard), "response_give_up")

    async def _say(self, line: Line) -> PlayoutCheckpointFrame:
        audio = TTSAudioRawFrame(audio=line.audio, sample_rate=self.lines.sample_rate_hz,
                                 num_channels=1)
        audio.interruptible = False  # a cut would race the interruption just broadcast
        self._own_audio.add(audio.id)
        checkpoint = PlayoutCheckpointFrame(label="response_guard")
        await self._voice.push_frame(audio)
        await self._voice.push_frame(checkpoint)
        if self._on_said is not None:
            await self._on_said(line.text)
        return checkpoint

    async def _give_up_when_heard(self, heard: PlayoutCheckpointFrame) -> None:
        await heard.reached.wait()
        assert self._on_give_up is not None
        await self._on_give_up()


class _Watch(FrameProcessor):
    """Observes every frame and forwards it unchanged."""

    def __init__(self, guard: ResponseGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._guard.caller_started()
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._guard.caller_stopped(frame.stop_secs)
        elif isinstance(frame, ErrorFrame) and direction == FrameDirection.UPSTREAM:
            self._guard.vendor_failed(frame)
        await self.push_frame(frame, direction)


class _Voice(FrameProcessor):
    """Observes the answer being made, forwards every frame, and speaks the guard's lines."""

    def __init__(self, guard: ResponseGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guard = guard

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        guard = self._guard
        if isinstance(frame, LLMFullResponseStartFrame):
            guard.llm_asked()
        elif isinstance(frame, TTSStartedFrame):
            guard.tts_started()
        elif isinstance(frame, TTSAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            guard.audio_made(frame)
        elif isinstance(frame, (FunctionCallsStartedFrame, InterruptionFrame)):
            guard.answer_stopped()
        elif isinstance(frame, (EndFrame, CancelFrame)):
            guard.stop()
        await self.push_frame(frame, direction)

    async def cleanup(self) -> None:
        await super().cleanup()
        self._guard.stop()


def _step(processor: Any) -> str | None:
    for kind, name in ((STTService, "stt"), (LLMService, "llm"), (TTSService, "tts")):
        if isinstance(processor, kind):
            return name
    return None


def _kind(frame: ErrorFrame) -> str:
    """``timeout``, or Pipecat's category of the error (``server``, ``rate_limit``...)."""
    if type(frame.exception).__name__.endswith("TimeoutError"):
        return "timeout"
    return frame.category.value if frame.category is not None else "unknown"


def _vendor(processor: Any) -> str:
    """``openai``, ``deepgram``... from the Pipecat service module a service comes from;
    else its class name."""
    if processor is None:
        return "unknown"
    for cls in type(processor).__mro__:
        parts = cls.__module__.split(".")
        if parts[:2] == ["pipecat", "services"] and len(parts) > 3:
            return parts[2]
    return type(processor).__name__
