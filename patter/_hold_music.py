"""The bundled default hold music: a soft two-chord loop, generated once as an 8 kHz WAV."""

from __future__ import annotations

import functools
import io
import wave

import numpy as np

from patter.audio import PHONE_RATE_HZ


@functools.cache
def hold_music_wav(seconds: float = 8.0) -> bytes:
    """WAV bytes of gentle hold music (Twilio ``<Play>`` plays WAV)."""
    t = np.arange(int(seconds * PHONE_RATE_HZ)) / PHONE_RATE_HZ
    chords = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6))
    half = len(t) // 2
    signal = np.zeros_like(t)
    for index, chord in enumerate(chords):
        part = slice(index * half, (index + 1) * half)
        for frequency in chord:
            signal[part] += np.sin(2 * np.pi * frequency * t[part])
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * (t % (seconds / 2)) / (seconds / 2))
    samples = (signal / 3 * envelope * 0.25 * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(PHONE_RATE_HZ)
        wav.writeframes(samples.tobytes())
    return buffer.getvalue()
