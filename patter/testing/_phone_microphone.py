"""The simulated caller's microphone: queued speech, else silence, plus the agent's echo."""

from __future__ import annotations

import audioop
from collections.abc import Callable
from typing import Any

from patter.testing.audio import mulaw_to_pcm, pcm_to_mulaw

from ._phone_playout import FRAME_BYTES, PlayoutBuffer

_SILENCE = b"\xff" * FRAME_BYTES


class Microphone:
    """What the caller's microphone picks up, one 20 ms mu-law frame at a time.

    Speech queued with ``queue()`` is taken in order (silence when none is left); the
    agent audio that played ``echo_delay_s`` earlier leaks in, scaled by ``echo_gain``.
    Reports ``caller_audio_started`` / ``caller_audio_ended`` through ``on_event``.
    """

    def __init__(self, playout: PlayoutBuffer, on_event: Callable[..., Any]) -> None:
        self._playout = playout
        self._on_event = on_event
        self._speech = bytearray()
        self._speaking = False
        self.echo_gain = 0.0
        """Share of the agent's voice leaking back into the microphone (0 = none)."""
        self.echo_delay_s = 0.15
        """How late that echo comes back, after the agent audio played."""

    @property
    def has_speech(self) -> bool:
        """Whether queued speech is still to be sent."""
        return bool(self._speech)

    def queue(self, pcm: bytes) -> None:
        """Queue 16-bit 8 kHz PCM after what is already queued."""
        self._speech.extend(pcm_to_mulaw(pcm))

    def next_frame(self, captured_at: float) -> bytes:
        """The next frame, captured from ``captured_at`` (monotonic seconds)."""
        frame = _SILENCE
        if self._speech:
            if not self._speaking:
                self._speaking = True
                self._on_event("caller_audio_started")
            frame = bytes(self._speech[:FRAME_BYTES]).ljust(FRAME_BYTES, b"\xff")
            del self._speech[:FRAME_BYTES]
        return self._with_echo(frame, captured_at)

    def frame_sent(self) -> None:
        """The frame went out: note the end of the caller's speech if it was the last."""
        if self._speaking and not self._speech:
            self._speaking = False
            self._on_event("caller_audio_ended")

    def _with_echo(self, frame: bytes, at: float) -> bytes:
        if self.echo_gain <= 0:
            return frame
        played = self._playout.played_between(at - self.echo_delay_s, len(frame))
        echo = audioop.mul(mulaw_to_pcm(played), 2, self.echo_gain)
        return pcm_to_mulaw(audioop.add(mulaw_to_pcm(frame), echo, 2))
