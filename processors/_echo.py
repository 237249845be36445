"""Is this caller audio only the agent's own voice coming back down the line?"""

from __future__ import annotations

from collections import deque

import numpy as np

from patter._correlation import best_alignment
from patter.transports.playout import PlayoutLedger

PHONE_RATE_HZ = 8000


def dbfs(samples: np.ndarray) -> float:
    """RMS level of 16-bit samples in dB below full scale (-180 for digital silence)."""
    if samples.size == 0:
        return -180.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768.0
    return 20 * float(np.log10(max(rms, 1e-9)))


class EchoDetector:
    """Tells echo frames from the caller's own sound, against the agent audio just played.

    The last ``block_ms`` of caller audio is matched against the last ``window_ms`` of agent
    audio played (``ledger.played_audio``). Where the best match correlates at least
    ``min_correlation``, the matched agent audio, scaled, is removed from the newest
    frame: if what remains is ``residual_db`` below the frame (or below ``floor_dbfs``),
    the frame was only echo. A caller talking over the echo leaves a loud remainder.
    The echo's delay is remembered and tried first; the full search runs only when the
    frame is not explained at that delay.
    """

    def __init__(
        self,
        ledger: PlayoutLedger,
        *,
        min_correlation: float = 0.5,
        window_ms: float = 600.0,
        block_ms: float = 200.0,
        residual_db: float = 10.0,
        floor_dbfs: float = -42.0,
    ) -> None:
        self._ledger = ledger
        self._min_correlation = min_correlation
        self._window_ms = window_ms
        self._residual_db = residual_db
        self._floor_dbfs = floor_dbfs
        frames = max(1, round(block_ms / 20))  # the line was silent before the call
        self._recent: deque[np.ndarray] = deque(
            [np.zeros(PHONE_RATE_HZ // 50, dtype=np.int16)] * frames, maxlen=frames
        )
        self._lag: int | None = None  # samples from the end of the played audio to the echo

    def is_echo(self, samples: np.ndarray) -> bool:
        """Whether ``samples`` (the newest 8 kHz caller frame) is only the agent's echo."""
        self._recent.append(samples)
        mic = np.concatenate(self._recent).astype(np.float64)
        played = np.frombuffer(
            self._ledger.played_audio(self._window_ms + len(mic) * 1000 / PHONE_RATE_HZ),
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
        return dbfs(residual) < max(self._floor_dbfs, dbfs(latest) - self._residual_db)

    def hear(self, samples: np.ndarray) -> None:
        """Keep ``samples`` as recent caller audio without checking it (a quiet frame)."""
        self._recent.append(samples)
