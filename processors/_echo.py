"""Is this caller audio only the agent's own voice coming back down the line?"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np

from patter.audio import PHONE_RATE_HZ, level_dbfs
from patter.processors._correlation import best_alignment

REFERENCE_MS = 3000.0
"""How much recently sent agent audio is kept."""


class Playout(Protocol):
    """Where the agent's audio stands at the caller's end (the transport knows, from marks).

    Positions are milliseconds of agent audio since the stream started.
    """

    def heard_estimate_ms(self) -> float:
        """The position the caller is hearing now."""
        ...

    def silent_for_ms(self) -> float:
        """How long the caller's end has had no agent audio left to play (0 while playing)."""
        ...


class EchoReference:
    """The agent audio the caller's line played lately: what its echo would be made of.

    Owned by the echo detector, fed by whatever plays the agent's voice (the Twilio
    output): ``add`` each chunk at its position as it is sent, and ``follow`` the playout
    that says where the caller's end stands. Unfed, it holds nothing and no echo is found.
    """

    def __init__(self, *, keep_ms: float = REFERENCE_MS) -> None:
        self._keep_ms = keep_ms
        self._chunks: deque[tuple[float, bytes, bool]] = deque()
        self._playout: Playout | None = None

    def follow(self, playout: Playout) -> None:
        """Take playout positions from ``playout`` from now on."""
        self._playout = playout

    def add(self, position_ms: float, pcm: bytes, *, after_silence: bool) -> None:
        """Agent audio (8 kHz, 16-bit) sent to play from ``position_ms``; ``after_silence``:
        nothing was left to play before it."""
        self._chunks.append((position_ms, pcm, after_silence))
        while self._chunks and self._chunks[0][0] < position_ms - self._keep_ms:
            self._chunks.popleft()

    def played_audio(self, span_ms: float) -> bytes:
        """8 kHz PCM of the agent audio played in the last ``span_ms`` of playout positions.

        Where playout started from silence, silence precedes the audio, as the caller's line
        heard it; if playout ended more than ``span_ms`` ago, nothing.
        """
        if self._playout is None or self._playout.silent_for_ms() > span_ms:
            return b""
        end = self._playout.heard_estimate_ms()
        wanted = int(span_ms * PHONE_RATE_HZ / 1000) * 2
        parts: list[bytes] = []
        size = 0
        for position, pcm, after_silence in reversed(self._chunks):
            if position >= end:
                continue
            played = pcm[: min(len(pcm) // 2, int((end - position) * PHONE_RATE_HZ / 1000)) * 2]
            piece = played[-(wanted - size):]
            parts.append(piece)
            size += len(piece)
            if size >= wanted:
                break
            if after_silence:
                parts.append(bytes(wanted - size))
                break
        return b"".join(reversed(parts))


class EchoDetector:
    """Tells echo frames from the caller's own sound, against the agent audio just played.

    The last ``block_ms`` of caller audio (8 kHz) is matched against the last ``window_ms``
    of agent audio played (``reference``, which this detector owns). Where the best match
    correlates at least ``min_correlation``, the matched agent audio, scaled, is removed
    from the newest frame: if what remains is ``residual_db`` below the frame (or below
    ``floor_dbfs``), the frame was only echo. A caller talking over the echo leaves a loud
    remainder. The echo's delay is remembered and tried first; the full search runs only
    when the frame is not explained at that delay.
    """

    def __init__(
        self,
        *,
        min_correlation: float = 0.5,
        window_ms: float = 600.0,
        block_ms: float = 200.0,
        residual_db: float = 10.0,
        floor_dbfs: float = -42.0,
    ) -> None:
        self.reference = EchoReference()
        """The agent audio played (fed by the transport that plays it)."""
        self._min_correlation = min_correlation
        self._window_ms = window_ms
        self._residual_db = residual_db
        self._floor_dbfs = floor_dbfs
        # The caller's last ``block_ms`` (the line was silent before the call), whatever the
        # length of the frames it came in.
        self._recent = np.zeros(round(block_ms * PHONE_RATE_HZ / 1000), dtype=np.int16)
        self._lag: int | None = None  # samples from the end of the played audio to the echo

    def is_echo(self, samples: np.ndarray) -> bool:
        """Whether ``samples`` (the newest 8 kHz caller frame) is only the agent's echo."""
        self.hear(samples)
        mic = self._recent.astype(np.float64)
        played = np.frombuffer(
            self.reference.played_audio(self._window_ms + len(mic) * 1000 / PHONE_RATE_HZ),
            dtype=np.int16,
        ).astype(np.float64)
        if played.size < mic.size or not played.any():
            return False
        latest = mic[-samples.size:]
        if self._lag is not None and self._explained(latest, played, played.size - self._lag):
            return True
        offset, correlation = best_alignment(played, mic)
        if correlation < self._min_correlation:
            return False
        self._lag = played.size - (offset + mic.size)
        return self._explained(latest, played, offset + mic.size)

    def _explained(self, latest: np.ndarray, played: np.ndarray, end: int) -> bool:
        """Whether ``latest`` is ``played[:end]``'s tail, scaled, to within the residual."""
        reference = played[end - latest.size: end]
        if reference.size != latest.size:
            return False
        energy = float(reference @ reference)
        if energy == 0:
            return False
        residual = latest - (reference @ latest) / energy * reference
        return level_dbfs(residual) < max(self._floor_dbfs, level_dbfs(latest) - self._residual_db)

    def hear(self, samples: np.ndarray) -> None:
        """Keep ``samples`` as recent caller audio without checking it (a quiet frame)."""
        self._recent = np.concatenate((self._recent, samples))[-self._recent.size:]
