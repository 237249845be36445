"""Which words of the agent's reply the caller heard, from text ↔ audio spans.

TTS services emit the text they spoke next to its audio: sentence by sentence after the
sentence's audio (OpenAI), or word by word with timestamps, after the audio chunk that
completes the word (ElevenLabs). ``SpokenText`` learns each piece of text twice:

* on *arrival* at the output (before Twilio's pacing), with the duration of the audio
  that carried it — so a sentence still being played has a known length;
* on *sending*, with the exact span of positions (ms of agent audio since the stream
  started) its audio occupied.

``heard(position_ms)`` then returns the words of the current turn heard by a playout
position: whole segments played to their end, plus the words of the segment being played
in proportion to the audio played (for word-level segments: none of a word still playing).
A turn ends where the LLM's response (or a spoken announcement) ends, once that has been
heard; its text is then in the LLM context and forgotten here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

WORDS_PER_SECOND = 2.5
"""Speaking rate assumed for a sentence whose audio is still streaming in from the TTS."""


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
class _Arrived:
    """A piece of text as it reached the output, with the audio duration before it."""

    text: str
    duration_ms: float
    word_level: bool


class SpokenText:
    """Text segments of the agent's current speech, aligned with audio positions."""

    def __init__(self) -> None:
        self._segments: list[Segment] = []
        self._arrived: deque[_Arrived] = deque()
        self._arriving_ms = 0.0
        self._announced = ""
        self._word_level = False
        self._open_start_ms: float | None = None
        self._turn_ends: deque[float] = deque()

    # ----- arrival (before pacing) ---------------------------------------------------------

    def note_announced(self, text: str) -> None:
        """A sentence the TTS is about to speak (Pipecat's ``AggregatedTextFrame``)."""
        if text.strip():
            self._announced = text.strip()

    def note_audio_arrived(self, duration_ms: float) -> None:
        """``duration_ms`` of interruptible agent audio reached the output."""
        self._arriving_ms += duration_ms

    def note_text_arrived(self, text: str, *, word_level: bool) -> None:
        """The text carried by the audio that arrived since the previous text."""
        if not text.strip():
            return
        self._arrived.append(_Arrived(text.strip(), self._arriving_ms, word_level))
        self._arriving_ms = 0.0
        self._word_level = word_level

    # ----- sending (after pacing) ------------------------------------------------------------

    def note_audio_sent(self, start_ms: float) -> None:
        """Agent audio starting at position ``start_ms`` went to Twilio."""
        if self._open_start_ms is None:
            self._open_start_ms = start_ms

    def note_text_sent(self, text: str, end_ms: float) -> None:
        """The text whose audio ends at ``end_ms`` has been sent (its audio all before it)."""
        start = self._open_start_ms if self._open_start_ms is not None else end_ms
        self._open_start_ms = None
        if not text.strip():
            return
        self._segments.append(Segment(text.strip(), start, end_ms))
        if self._arrived:
            self._arrived.popleft()

    def note_turn_end(self, position_ms: float) -> None:
        """The agent's turn ends at ``position_ms`` (the response's end frame was sent)."""
        self._turn_ends.append(position_ms)

    def forget_heard(self, heard_ms: float) -> None:
        """Drop the turns heard to their end (their text has reached the LLM context)."""
        while self._turn_ends and self._turn_ends[0] <= heard_ms:
            end = self._turn_ends.popleft()
            self._segments = [s for s in self._segments if s.end_ms > end]

    # ----- the cut ----------------------------------------------------------------------------

    def heard(self, heard_ms: float) -> str:
        """The words of the current turn heard by ``heard_ms``."""
        parts = [s.heard_part(heard_ms) for s in self._segments]
        parts.append(self._open_part(heard_ms))
        return " ".join(p for p in parts if p)

    def forget_unsent(self) -> None:
        """Forget text and audio that arrived but was not sent (dropped from the queue)."""
        self._arrived.clear()
        self._arriving_ms = 0.0
        self._announced = ""

    def reset(self) -> None:
        """Forget everything (after a clear: the rest will never be heard)."""
        self.forget_unsent()
        self._segments.clear()
        self._open_start_ms = None
        self._turn_ends.clear()

    def _open_part(self, heard_ms: float) -> str:
        """Words heard of the segment being sent, whose text frame is still behind its audio."""
        start = self._open_start_ms
        if start is None or heard_ms <= start:
            return ""
        if self._arrived:
            piece = self._arrived[0]
            if piece.word_level:
                return ""  # a word is reported once complete; this one is still playing
            return Segment(piece.text, start, start + piece.duration_ms).heard_part(heard_ms)
        if self._word_level or not self._announced:
            return ""
        # The sentence is still streaming in from the TTS: its length is at least the
        # audio that arrived so far, and about what its words take at a normal rate.
        words = len(self._announced.split())
        duration = max(self._arriving_ms, words / WORDS_PER_SECOND * 1000)
        return Segment(self._announced, start, start + duration).heard_part(heard_ms)
