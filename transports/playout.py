"""What the caller has heard: the ledger of agent audio sent to Twilio and echoed back by marks.

Twilio plays outbound audio from its own buffer and echoes a ``mark`` once the audio sent
before it has played; ``clear`` empties the buffer. Marks are therefore the only truth
about what the caller heard. Positions are milliseconds of agent audio since the stream
started (audio dropped by ``clear`` still counts, so positions only grow); each mark is
named with the position it closes.

The ledger is private to the Twilio transport: the input records mark echoes here, the
output sends by it and pushes the frames it holds once heard (from the output's own
tasks). Processors see the agent's voice through ``AgentSpeech`` (the transport's
``speech``), never through the ledger.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from patter._log import get_logger
from patter.transports.heard_text import SpokenText

logger = get_logger(__name__)

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

    Held frames are not pushed from here: ``frames_heard`` is set once some can go, and
    the output takes them (``take_heard``) and pushes them from its own task.

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
    frames_heard: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def unheard_ms(self) -> float:
        """Audio sent but not yet heard (what sits in Twilio's buffer)."""
        return max(0.0, self.sent_ms - self.heard_ms)

    @property
    def speaking(self) -> bool:
        """Whether agent audio is unheard at Twilio or held back by a pause."""
        return self.unheard_ms > 0 or self._held_back

    def silent_for_ms(self) -> float:
        """How long the caller's end has had no agent audio left to play (0 while playing)."""
        if self.unheard_ms > 0:
            return 0.0
        return (self.clock() - self._heard_at) * 1000

    # ----- sending --------------------------------------------------------------------------

    def note_sent(
        self,
        duration_ms: float,
        *,
        protected: bool = False,
        carries_text: bool = True,
    ) -> str:
        """Record ``duration_ms`` of audio as sent; returns the mark name that closes it.

        ``protected`` audio (the disclosure) cannot be cleared; ``carries_text=False`` keeps
        audio out of the text spans (audio without text, or sent just as a clear went out).
        """
        now = self.clock()
        from_idle = self.unheard_ms == 0
        if from_idle:
            self._heard_at = now  # Twilio starts playing it now
        if carries_text and not protected:
            self.text.note_audio_sent(self.sent_ms)
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
        await self._notify()

    def heard_estimate_ms(self) -> float:
        """Where playout is now: the last mark echo plus the time since, up to the next mark.

        Marks come every chunk (40 ms); between two of them Twilio keeps playing.
        """
        if not self._pending_marks:
            return self.heard_ms
        elapsed_ms = (self.clock() - self._heard_at) * 1000
        return min(self.heard_ms + elapsed_ms, self._pending_marks[0].position, self.sent_ms)

    def hold(self, frame: object) -> bool:
        """Keep ``frame`` until the audio sent before it has been heard; False if it may go
        on at once (everything sent was heard and no frame waits before it)."""
        if not self._held and (self.heard_ms >= self.sent_ms or self.stream_closed):
            return False
        self._held.append((self.sent_ms, frame))
        self._signal_heard()
        return True

    def take_heard(self) -> list[object]:
        """The held frames whose audio has been heard (all of them once the stream closed),
        in order; they are no longer held."""
        frames: list[object] = []
        while self._held and (self.stream_closed or self._held[0][0] <= self.heard_ms):
            frames.append(self._held.popleft()[1])
        self.frames_heard.clear()
        return frames

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
        frames too; uninterruptible ones may go on (``take_heard``).
        """
        heard = self.heard_estimate_ms()
        self._held = deque((p, f) for p, f in self._held if not getattr(f, "interruptible", True))
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

    async def close(self) -> None:
        """The stream is gone: release waiters, and every held frame may go on."""
        self.stream_closed = True
        self._signal_heard()
        await self._notify()

    # ----- internals ----------------------------------------------------------------------------

    def _advance(self, position: float, *, echoed: bool = False) -> None:
        now = self.clock()
        self.heard_ms = position
        self._heard_at = now
        self.text.forget_heard(position)
        self._signal_heard()
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

    def _signal_heard(self) -> None:
        if self._held and (self.stream_closed or self._held[0][0] <= self.heard_ms):
            self.frames_heard.set()
