"""Audio facts and helpers shared by the call path, the processors and the test doubles.

One home for the phone's sample rate, the level of a block of samples, and whole-buffer
resampling, so no module keeps its own copy.
"""

from __future__ import annotations

import math

import numpy as np

from patter import _pipecat

__all__ = ["PHONE_RATE_HZ", "SILENCE_DBFS", "frame_levels_dbfs", "level_dbfs", "resample"]

PHONE_RATE_HZ = 8000
"""Twilio Media Streams carry 8 kHz mono G.711 mu-law; the call's pipeline runs at this rate."""

SILENCE_DBFS = -180.0
"""The level reported for an empty block (digital silence has no finite level)."""

_MIN_RMS = 1e-9  # keeps log10 finite for digital silence (-180 dBFS)


def level_dbfs(samples: np.ndarray | bytes) -> float:
    """RMS level of 16-bit samples (an int16 array or raw bytes) in dB below full scale."""
    values = np.frombuffer(samples, dtype=np.int16) if isinstance(samples, bytes) else samples
    if values.size == 0:
        return SILENCE_DBFS
    # One dot product: ~5x faster than mean(x**2) on a 40 ms frame (no temporaries), and
    # this runs on every caller frame (barge-in guard, echo detector).
    as_float = values.astype(np.float32)
    rms = math.sqrt(float(np.dot(as_float, as_float)) / values.size) / 32768.0
    return 20.0 * math.log10(max(rms, _MIN_RMS))


def frame_levels_dbfs(pcm: bytes, *, sample_rate_hz: int, frame_ms: int) -> np.ndarray:
    """The level (dBFS) of each whole ``frame_ms`` frame of 16-bit ``pcm``, in one numpy pass."""
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    frame = sample_rate_hz * frame_ms // 1000
    count = len(samples) // frame
    if not count:
        return np.zeros(0)
    frames = samples[: count * frame].reshape(count, frame)
    rms = np.sqrt(np.mean(frames**2, axis=1)) / 32768.0
    levels: np.ndarray = 20.0 * np.log10(np.maximum(rms, _MIN_RMS))
    return levels


async def resample(pcm: bytes, from_hz: int, to_hz: int) -> bytes:
    """Resample a whole buffer of 16-bit mono PCM with Pipecat's file resampler (soxr)."""
    if from_hz == to_hz:
        return pcm
    out: bytes = await _pipecat.create_file_resampler(quality="HQ").resample(pcm, from_hz, to_hz)
    return out
