"""Twilio's outbound playout buffer, as the simulated phone models it."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from patter.audio import PHONE_RATE_HZ, level_dbfs
from patter.testing.audio import mulaw_to_pcm

FRAME_BYTES = 160
"""One Twilio media frame: 20 ms of 8 kHz mu-law."""
BYTES_PER_S = PHONE_RATE_HZ  # mu-law: one byte a sample
MAX_LAG_S = 0.1
"""A clock slip longer than this restarts the schedule instead of catching up."""
VOICED_DBFS = -45.0
"""Audio louder than this counts as voiced (speech heard, not silence or line noise)."""
_SILENT_BYTE = b"\xff"


def is_voiced(ulaw: bytes) -> bool:
    """True if mu-law audio is louder than -45 dBFS (the threshold of ``voiced_seconds``)."""
    return level_dbfs(mulaw_to_pcm(ulaw)) > VOICED_DBFS


@dataclass
class _Audio:
    data: bytearray
    voiced: bool


@dataclass(frozen=True)
class _Mark:
    name: str


class PlayoutBuffer:
    """Plays queued mu-law at 8000 bytes/s in 20 ms frames, in real time.

    A mark is echoed (through ``echo(name, cleared)``) once all audio queued before it has
    finished playing; ``clear()`` drops queued audio and echoes every pending mark at once.
    ``on_event(kind)`` receives ``playout_started`` and ``playout_stopped``; ``on_change()``
    is called after every played frame so waiters can re-check their conditions.
    """

    def __init__(
        self,
        *,
        echo: Callable[[str, bool], Awaitable[None]],
        on_event: Callable[[str], None],
        on_change: Callable[[], None],
    ) -> None:
        """Create an idle buffer; ``run()`` plays it."""
        self._echo = echo
        self._on_event = on_event
        self._on_change = on_change
        self._queue: deque[_Audio | _Mark] = deque()
        self._wake = asyncio.Event()
        self._playing = False
        self._playing_until = 0.0
        self.queued_bytes = 0
        """Bytes of audio queued and not yet played."""
        self.queued_voiced = 0
        """How many queued media payloads are non-silent."""
        self.heard = bytearray()
        """Mu-law of every frame played, in order."""
        self.voiced_s = 0.0
        """Seconds of non-silent audio played."""
        self.last_voiced_end = time.monotonic()
        """When the last non-silent frame finished (or will finish) playing."""
        self.recent: deque[tuple[float, bytes]] = deque(maxlen=250)
        """The last 5 s of played frames as (start time, mu-law), for echo simulation."""

    def add_media(self, audio: bytes) -> None:
        """Queue one outbound ``media`` payload."""
        voiced = is_voiced(audio)
        self._queue.append(_Audio(bytearray(audio), voiced))
        self.queued_bytes += len(audio)
        self.queued_voiced += voiced
        self._poke()

    def add_mark(self, name: str) -> None:
        """Queue a mark behind the audio already queued."""
        self._queue.append(_Mark(name))
        self._poke()

    async def clear(self) -> None:
        """Drop queued audio now and echo every pending mark, in order."""
        marks = [item for item in self._queue if isinstance(item, _Mark)]
        self._queue.clear()
        self.queued_bytes = 0
        self.queued_voiced = 0
        self._playing_until = min(self._playing_until, time.monotonic())
        self._poke()
        for mark in marks:
            await self._echo(mark.name, True)

    async def run(self) -> None:
        """Play forever; cancel the task to stop."""
        while True:
            now = time.monotonic()
            if now < self._playing_until:
                await self._sleep(self._playing_until - now)
                continue
            if not self._queue:
                if self._playing:
                    self._playing = False
                    self._on_event("playout_stopped")
                await self._sleep(None)
                continue
            head = self._queue[0]
            if isinstance(head, _Mark):
                self._queue.popleft()
                await self._echo(head.name, False)
                continue
            contiguous = self._playing and now - self._playing_until < MAX_LAG_S
            start = self._playing_until if contiguous else now
            if not self._playing:
                self._playing = True
                self._on_event("playout_started")
            frame = self._take_frame()
            self._playing_until = start + len(frame) / BYTES_PER_S
            self.heard.extend(frame)
            self.recent.append((start, frame))
            if is_voiced(frame):
                self.voiced_s += len(frame) / BYTES_PER_S
                self.last_voiced_end = self._playing_until
            self._on_change()

    def played_between(self, begin: float, size: int) -> bytes:
        """``size`` bytes of mu-law as played from ``begin`` (``time.monotonic()``) on,
        with silence where nothing played."""
        out = bytearray(_SILENT_BYTE * size)
        for start, frame in self.recent:
            first = round((start - begin) * BYTES_PER_S)
            if first >= size or first + len(frame) <= 0:
                continue
            lo, hi = max(first, 0), min(first + len(frame), size)
            out[lo:hi] = frame[lo - first:hi - first]
        return bytes(out)

    def _poke(self) -> None:
        self._wake.set()

    async def _sleep(self, timeout_s: float | None) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        except TimeoutError:
            pass
        self._wake.clear()

    def _take_frame(self) -> bytes:
        frame = bytearray()
        while self._queue and len(frame) < FRAME_BYTES:
            head = self._queue[0]
            if isinstance(head, _Mark):
                break
            take = FRAME_BYTES - len(frame)
            frame.extend(head.data[:take])
            del head.data[:take]
            if not head.data:
                self._queue.popleft()
                self.queued_voiced -= head.voiced
        self.queued_bytes -= len(frame)
        return bytes(frame)
