"""What the caller has heard: the ledger of agent audio sent to Twilio and echoed back by marks.

Twilio plays outbound audio from its own buffer and echoes a ``mark`` once the audio sent
before it has played; ``clear`` empties the buffer. Marks are therefore the only truth
about what the caller heard. Positions are milliseconds of agent audio since the stream
started (audio dropped by ``clear`` still counts, so positions only grow); each mark is
named with the position it closes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from patter._log import get_logger
from patter.transports.heard_text import SpokenText

logger = get_logger(__name__)

REFERENCE_MS = 3000.0
"""How much recently sent agent audio is kept (the reference for echo detection)."""
RTT_SAMPLES = 8


@dataclass(frozen=True)
class _Mark:
    """A mark sent: its position, when, and (if sent into an empty buffer) its chunk's ms."""

    position: float
    sent_at: float
    idle_ms: float | None


@dataclass(frozen=True)
class Cut:
    """One interruption: where playout stood and what the caller heard of the cut speech.

    ``cleared`` says whether agent audio was playing or held back, so Twilio's buffer
    had to be cleared.
    """

    heard_ms: float
    sent_ms: float
    heard_text: str
    cleared: bool


@dataclass
class PlayoutLedger:
    """Positions of agent audio sent and heard, plus the frames waiting to be heard.

    Attributes:
        sent_ms: Agent audio sent to Twilio so far.
        heard_ms: Agent audio the caller has heard (from the latest mark echo).
        lead_ms: Audio to keep buffered at Twilio (absorbs jitter; a pause silences the
            agent within about this much audio). Sending runs ahead of the mark echoes by
            this plus the measured round trip ``rtt_ms``, since echoes arrive that late.
        rtt_ms: Round trip to Twilio and back, measured from marks (starts at a guess).
        paused: Sending of interruptible audio is held (the caller may be barging in).
        text: The agent's speech as text ↔ audio spans (what the caller heard, in words).
        cuts: Every interruption that cut agent audio, in order (diagnostics, benchmarks).
        clock: Monotonic seconds (replaceable in tests).
    """

    lead_ms: float = 100.0
    rtt_ms: float = 100.0
    stall_timeout_s: float = 1.5
    sent_ms: float = 0.0
    heard_ms: float = 0.0
    protected_until_ms: float = 0.0
    stream_closed: bool = False
    paused: bool = False
    text: SpokenText = field(default_factory=SpokenText)
    cuts: list[Cut] = field(default_factory=list)
    clock: Callable[[], float] = time.monotonic
    _progress: asyncio.Condition = field(default_factory=asyncio.Condition)
    _held: deque[tuple[float, object]] = field(default_factory=deque)
    _pending_marks: deque[_Mark] = field(default_factory=deque)
    _heard_at: float = 0.0
    _rtt_samples: deque[float] = field(default_factory=lambda: deque(maxlen=RTT_SAMPLES))
    _held_back: bool = False
    _reference: deque[tuple[float, bytes, bool]] = field(default_factory=deque)
    _release: Callable[[object], Awaitable[None]] | None = None

    @property
    def unheard_ms(self) -> float:
        """Audio sent but not yet heard (what sits in Twilio's buffer)."""
        return max(0.0, self.sent_ms - self.heard_ms)

    @property
    def speaking(self) -> bool:
        """Whether agent audio is unheard at Twilio or held back by a pause."""
        return self.unheard_ms > 0 or self._held_back

    def set_releaser(self, release: Callable[[object], Awaitable[None]]) -> None:
        """Where held frames go once the audio before them has been heard."""
        self._release = release

    # ----- sending --------------------------------------------------------------------------

    def note_sent(
        self,
        duration_ms: float,
        *,
        protected: bool = False,
        carries_text: bool = True,
        pcm: bytes = b"",
    ) -> str:
        """Record ``duration_ms`` of audio as sent; returns the mark name that closes it.

        ``protected`` audio (the disclosure) cannot be cleared; ``carries_text=False`` keeps
        audio out of the text spans (audio without text, or sent just as a clear went out).
        ``pcm`` (8 kHz, 16-bit) is kept for a few seconds as the echo reference.
        """
        now = self.clock()
        from_idle = self.unheard_ms == 0
        if from_idle:
            self._heard_at = now  # Twilio starts playing it now
        if carries_text and not protected:
            self.text.note_audio_sent(self.sent_ms)
        if pcm:
            self._reference.append((self.sent_ms, pcm, from_idle))
            while self._reference and self._reference[0][0] < self.sent_ms - REFERENCE_MS:
                self._reference.popleft()
        self.sent_ms += duration_ms
        if protected:
            self.protected_until_ms = self.sent_ms
        self._pending_marks.append(_Mark(self.sent_ms, now, duration_ms if from_idle else None))
        return f"{self.sent_ms:.0f}"

    async def wait_for_room(self, *, interruptible: bool = True) -> None:
        """Wait until the unheard audio is within ``lead_ms + rtt_ms`` and, for interruptible
        audio, no pause is in force (marks stalling for ``stall_timeout_s`` count as played)."""
        async with self._progress:
            while not self.stream_closed and (
                self.unheard_ms > self.lead_ms + self.rtt_ms or (interruptible and self.paused)
            ):
                self._held_back = interruptible and self.paused
                before = self.heard_ms
                try:
                    await asyncio.wait_for(self._progress.wait(), self.stall_timeout_s)
                except TimeoutError:
                    if self.heard_ms == before and not self.paused:
                        # No mark came back: assume real-time playout rather than stall the call.
                        logger.warning("no mark echo from twilio; pacing by clock")
                        stalled_ms = self.stall_timeout_s * 1000
                        self._advance(min(self.sent_ms, self.heard_ms + stalled_ms))
                finally:
                    self._held_back = False
        await self._release_heard()

    # ----- hearing ----------------------------------------------------------------------------

    async def on_mark(self, name: str) -> None:
        """A mark echo from Twilio: everything up to its position has played."""
        try:
            position = float(name)
        except ValueError:
            logger.debug("ignoring foreign mark", extra={"mark": name[:40]})
            return
        if position <= self.heard_ms:
            return
        self._advance(min(position, self.sent_ms), echoed=True)
        await self._release_heard()
        await self._notify()

    def heard_estimate_ms(self) -> float:
        """Where playout is now: the last mark echo plus the time since, up to the next mark.

        Marks come every chunk (40 ms); between two of them Twilio keeps playing.
        """
        if not self._pending_marks:
            return self.heard_ms
        elapsed_ms = (self.clock() - self._heard_at) * 1000
        return min(self.heard_ms + elapsed_ms, self._pending_marks[0].position, self.sent_ms)

    def played_audio(self, span_ms: float) -> bytes:
        """8 kHz PCM of the agent audio played in the last ``span_ms`` of playout positions.

        Where playout started from silence, silence precedes the audio, as the caller's line
        heard it; if playout ended more than ``span_ms`` ago, nothing.
        """
        if self.unheard_ms == 0 and (self.clock() - self._heard_at) * 1000 > span_ms:
            return b""
        end = self.heard_estimate_ms()
        wanted = int(span_ms * 8) * 2  # bytes at 8 kHz, 16-bit
        parts: list[bytes] = []
        size = 0
        for position, pcm, after_silence in reversed(self._reference):
            if position >= end:
                continue
            played = pcm[: min(len(pcm) // 2, int((end - position) * 8)) * 2]
            piece = played[-(wanted - size):]
            parts.append(piece)
            size += len(piece)
            if size >= wanted:
                break
            if after_silence:
                parts.append(bytes(wanted - size))
                break
        return b"".join(reversed(parts))

    async def hold(self, frame: object) -> None:
        """Keep ``frame`` until the audio sent before it has been heard, then release it."""
        if not self._held and self.heard_ms >= self.sent_ms:
            await self._emit(frame)
        else:
            self._held.append((self.sent_ms, frame))

    async def wait_until_heard(self, timeout_s: float) -> bool:
        """Wait until all audio sent so far has been heard; False on timeout or closed stream."""
        target = self.sent_ms
        try:
            async with asyncio.timeout(timeout_s):
                async with self._progress:
                    await self._progress.wait_for(
                        lambda: self.heard_ms >= target or self.stream_closed
                    )
        except TimeoutError:
            return False
        return self.heard_ms >= target

    # ----- barge-in ---------------------------------------------------------------------------

    def has_protected_audio_playing(self) -> bool:
        """Whether audio that must not be cut (the AI disclosure) is still unheard."""
        return self.heard_ms < self.protected_until_ms

    def pause(self) -> bool:
        """Stop sending interruptible audio (the caller may be barging in); True if paused.

        Audio already in Twilio's buffer (about ``lead_ms``) still plays; a confirmed
        interruption then clears it, a false alarm ``resume()``s with nothing lost.
        """
        if not self.has_protected_audio_playing():
            self.paused = True
        return self.paused

    async def resume(self) -> None:
        """Let held-back audio go on, exactly where it stopped."""
        if self.paused:
            self.paused = False
            await self._notify()

    async def clear(self) -> Cut:
        """An interruption: cut the agent's speech where the caller is hearing it now.

        Returns the cut: the playout position (``heard_estimate_ms``), the text heard of
        the cut speech, and whether Twilio's buffer needs a ``clear`` (agent audio was
        unheard or held back). Everything not yet heard is dropped: interruptible held
        frames too; uninterruptible ones are released by ``flush_uninterruptible``.
        """
        heard = self.heard_estimate_ms()
        cut = Cut(heard, self.sent_ms, self.text.heard(heard), cleared=self.speaking)
        if cut.cleared:
            self.cuts.append(cut)
        self.text.reset()
        # Positions only move forward: the dropped audio counts as gone, so the marks
        # Twilio echoes for it on clear (all at or before sent_ms) are recognised as stale.
        self._advance(self.sent_ms)
        self.protected_until_ms = min(self.protected_until_ms, self.sent_ms)
        self.paused = False
        await self._notify()
        return cut

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
        await self._notify()

    # ----- internals ----------------------------------------------------------------------------

    def _advance(self, position: float, *, echoed: bool = False) -> None:
        now = self.clock()
        self.heard_ms = position
        self._heard_at = now
        while self._pending_marks and self._pending_marks[0].position <= position:
            mark = self._pending_marks.popleft()
            if echoed and mark.idle_ms is not None:
                # Sent into an empty buffer: the echo took this chunk's audio plus the trip.
                sample = min(max((now - mark.sent_at) * 1000 - mark.idle_ms, 0.0), 1000.0)
                self._rtt_samples.append(sample)
                # The least of the recent trips: the path's own delay, without the
                # hiccups of a busy moment (the lead absorbs those).
                self.rtt_ms = min(self._rtt_samples)

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    async def _release_heard(self) -> None:
        while self._held and self._held[0][0] <= self.heard_ms:
            await self._emit(self._held.popleft()[1])
        self.text.forget_heard(self.heard_ms)

    async def _emit(self, frame: object) -> None:
        if self._release is not None:
            await self._release(frame)
