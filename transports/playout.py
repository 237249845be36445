"""What the caller has heard: the ledger of agent audio sent to Twilio and echoed back by marks.

Twilio plays outbound audio from its own buffer and echoes a ``mark`` once the audio sent
before it has played; ``clear`` empties the buffer. Marks are therefore the only truth
about what the caller heard. Positions are milliseconds of agent audio since the stream
started (audio dropped by ``clear`` still counts, so positions only grow); each mark is
named with the position it closes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from patter._log import get_logger

logger = get_logger(__name__)


@dataclass
class Segment:
    """Text the agent spoke, and the span of audio (ms positions) that carried it."""

    text: str
    start_ms: float
    end_ms: float

    def heard_part(self, heard_ms: float) -> str:
        """The words of this segment the caller heard by ``heard_ms`` (proportional to audio)."""
        if heard_ms >= self.end_ms:
            return self.text
        if heard_ms <= self.start_ms or self.end_ms <= self.start_ms:
            return ""
        fraction = (heard_ms - self.start_ms) / (self.end_ms - self.start_ms)
        words = self.text.split()
        # A word counts as heard once its audio has fully played (whole words only).
        return " ".join(words[: int(len(words) * fraction)])


@dataclass
class PlayoutLedger:
    """Positions of agent audio sent and heard, plus the frames waiting to be heard.

    Attributes:
        sent_ms: Agent audio sent to Twilio so far.
        heard_ms: Agent audio the caller has heard (from the latest mark echo).
        lead_ms: How far sending may run ahead of hearing (keeps Twilio's buffer shallow).
    """

    lead_ms: float = 200.0
    stall_timeout_s: float = 1.5
    sent_ms: float = 0.0
    heard_ms: float = 0.0
    protected_until_ms: float = 0.0
    stream_closed: bool = False
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    _held: deque[tuple[float, object]] = field(default_factory=deque)
    _segments: list[Segment] = field(default_factory=list)
    _segment_start_ms: float | None = None
    _unspoken_text: str = ""
    words_per_second: float = 2.5
    _release: Callable[[object], Awaitable[None]] | None = None

    @property
    def unheard_ms(self) -> float:
        """Audio sent but not yet heard (what sits in Twilio's buffer)."""
        return max(0.0, self.sent_ms - self.heard_ms)

    def set_releaser(self, release: Callable[[object], Awaitable[None]]) -> None:
        """Where held frames go once the audio before them has been heard."""
        self._release = release

    def note_sent(self, duration_ms: float, *, protected: bool = False) -> str:
        """Record ``duration_ms`` of audio as sent; returns the mark name that closes it."""
        if self._segment_start_ms is None:
            self._segment_start_ms = self.sent_ms
        self.sent_ms += duration_ms
        if protected:
            self.protected_until_ms = self.sent_ms
        return f"{self.sent_ms:.0f}"

    def note_text(self, text: str) -> None:
        """Record that ``text`` was carried by the audio sent since the previous text."""
        start = self._segment_start_ms if self._segment_start_ms is not None else self.sent_ms
        if text.strip():
            self._segments.append(Segment(text.strip(), start, self.sent_ms))
            self._unspoken_text = _drop_prefix_words(self._unspoken_text, text)
        self._segment_start_ms = None

    def note_response_text(self, text: str) -> None:
        """Record LLM text on its way to TTS (its audio and timing are not known yet)."""
        self._unspoken_text += text

    async def on_mark(self, name: str) -> None:
        """A mark echo from Twilio: everything up to its position has played."""
        try:
            position = float(name)
        except ValueError:
            logger.debug("ignoring foreign mark", extra={"mark": name[:40]})
            return
        if position <= self.heard_ms:
            return
        self.heard_ms = min(position, self.sent_ms)
        await self._release_heard()
        async with self._progress:
            self._progress.notify_all()

    async def hold(self, frame: object) -> None:
        """Keep ``frame`` until the audio sent before it has been heard, then release it."""
        if not self._held and self.heard_ms >= self.sent_ms:
            await self._emit(frame)
        else:
            self._held.append((self.sent_ms, frame))

    async def wait_for_room(self) -> None:
        """Wait until the unheard audio is within ``lead_ms`` (or marks have stalled)."""
        async with self._progress:
            while self.unheard_ms > self.lead_ms and not self.stream_closed:
                before = self.heard_ms
                try:
                    await asyncio.wait_for(self._progress.wait(), self.stall_timeout_s)
                except asyncio.TimeoutError:
                    if self.heard_ms == before:
                        # No mark came back: assume real-time playout rather than stall the call.
                        logger.warning("no mark echo from twilio; pacing by clock")
                        self.heard_ms = min(self.sent_ms, self.heard_ms + self.stall_timeout_s * 1000)
        await self._release_heard()

    async def wait_until_heard(self, timeout_s: float) -> bool:
        """Wait until all audio sent so far has been heard; False on timeout or closed stream."""
        target = self.sent_ms
        try:
            async with asyncio.timeout(timeout_s):
                async with self._progress:
                    await self._progress.wait_for(lambda: self.heard_ms >= target or self.stream_closed)
        except TimeoutError:
            return False
        return self.heard_ms >= target

    def clear(self) -> str:
        """Twilio's buffer was cleared: return the text heard of the cut-off turn, drop the rest.

        Interruptible held frames are dropped (never heard); uninterruptible ones are
        released by ``flush_uninterruptible``.
        """
        heard = self.heard_ms
        parts = [s.heard_part(heard) for s in self._segments if s.end_ms > heard]
        if self._segment_start_ms is not None and heard > self._segment_start_ms:
            # Audio whose text frame has not arrived yet (sentence-level TTS sends the text
            # after the audio): estimate the words heard from the speaking rate.
            words = self._unspoken_text.split()
            count = int((heard - self._segment_start_ms) / 1000 * self.words_per_second)
            parts.append(" ".join(words[:count]))
        text = " ".join(p for p in parts if p)
        self._unspoken_text = ""
        # Positions only move forward: the dropped audio counts as gone, so the marks
        # Twilio echoes for it on clear (all at or before sent_ms) are recognised as stale.
        self.heard_ms = self.sent_ms
        self.protected_until_ms = min(self.protected_until_ms, self.sent_ms)
        self._segments.clear()
        self._segment_start_ms = None
        return text

    def has_protected_audio_playing(self) -> bool:
        """Whether audio that must not be cut (the AI disclosure) is still unheard."""
        return self.heard_ms < self.protected_until_ms

    async def flush_uninterruptible(self) -> None:
        """Release held frames that must survive an interruption; drop the others."""
        kept = [f for _, f in self._held if not getattr(f, "interruptible", True)]
        self._held.clear()
        for frame in kept:
            await self._emit(frame)

    async def close(self) -> None:
        """The stream is gone: release waiters and every held frame."""
        self.stream_closed = True
        while self._held:
            await self._emit(self._held.popleft()[1])
        async with self._progress:
            self._progress.notify_all()

    async def _release_heard(self) -> None:
        while self._held and self._held[0][0] <= self.heard_ms:
            await self._emit(self._held.popleft()[1])
        while self._segments and self._segments[0].end_ms <= self.heard_ms:
            self._segments.pop(0)

    async def _emit(self, frame: object) -> None:
        if self._release is not None:
            await self._release(frame)



def _drop_prefix_words(text: str, spoken: str) -> str:
    """``text`` without its leading words that ``spoken`` accounts for."""
    words = text.split()
    return " ".join(words[len(spoken.split()):])
