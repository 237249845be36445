"""Normalised cross-correlation: is one stretch of audio present in another?"""

from __future__ import annotations

import numpy as np


def max_normalized_correlation(haystack: np.ndarray, needle: np.ndarray) -> float:
    """Highest normalised cross-correlation (0..1) of ``needle`` at any offset in ``haystack``.

    Both are 1-D sample arrays at the same rate; 0.0 if ``needle`` is empty, silent or
    longer than ``haystack``.
    """
    return best_alignment(haystack, needle)[1]


def best_alignment(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """The offset in ``haystack`` where ``needle`` correlates best, and that correlation."""
    h = haystack.astype(np.float64)
    n = needle.astype(np.float64)
    if len(n) == 0 or len(h) < len(n):
        return 0, 0.0
    n = n - n.mean()
    n_norm = float(np.linalg.norm(n))
    if n_norm == 0:
        return 0, 0.0
    size = 1 << int(np.ceil(np.log2(len(h) + len(n))))
    spectrum = np.fft.rfft(h, size) * np.conj(np.fft.rfft(n, size))
    corr = np.fft.irfft(spectrum, size)[: len(h) - len(n) + 1]
    sums = _window_sums(h, len(n))
    sq_sums = _window_sums(h * h, len(n))
    energy = np.sqrt(np.maximum(sq_sums - sums * sums / len(n), 1e-9))
    scores = corr / (energy * n_norm)
    offset = int(np.argmax(scores))
    return offset, float(scores[offset])


def _window_sums(values: np.ndarray, width: int) -> np.ndarray:
    """Sums of every ``width``-long window of ``values``, in O(n)."""
    cumulative = np.concatenate(([0.0], np.cumsum(values)))
    return cumulative[width:] - cumulative[:-width]
