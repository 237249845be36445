"""Real test audio: speech from espeak-ng, tones, mu-law helpers and "was it heard" checks.

Speech is synthesised by the ``espeak-ng`` program (Debian package ``espeak-ng``) and
cached on disk, so fixtures are reproducible and a test run synthesises each phrase once.
"""

from __future__ import annotations

import audioop
import hashlib
import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import soxr

from patter.audio import PHONE_RATE_HZ, frame_levels_dbfs
from patter.processors._correlation import max_normalized_correlation

_CACHE_DIR = Path(
    os.environ.get("PATTER_AUDIO_CACHE", Path(tempfile.gettempdir()) / "patter-audio")
)


class EspeakMissingError(RuntimeError):
    """espeak-ng is not installed; install it with ``apt-get install espeak-ng``."""


def synthesize_speech(
    text: str, *, sample_rate_hz: int = PHONE_RATE_HZ, voice: str = "en-us"
) -> bytes:
    """Speak ``text`` with espeak-ng and return 16-bit mono PCM at ``sample_rate_hz``.

    The result is cached on disk by (text, voice, rate).
    """
    key = hashlib.sha256(f"{voice}|{sample_rate_hz}|{text}".encode()).hexdigest()[:24]
    cached = _CACHE_DIR / f"{key}.pcm"
    if cached.exists():
        return cached.read_bytes()
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise EspeakMissingError(
            "espeak-ng is needed to synthesise test speech: apt-get install espeak-ng"
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", "165", "-w", str(wav_path), text],
            check=True,
            capture_output=True,
        )
        pcm, source_rate = read_wav(wav_path)
    pcm = resample(pcm, source_rate, sample_rate_hz)
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp_path = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp_path.write_bytes(pcm)
    tmp_path.replace(cached)
    return pcm


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Read a 16-bit mono WAV file; returns (pcm, sample_rate_hz)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono WAV")
        return wav.readframes(wav.getnframes()), wav.getframerate()


def write_wav(path: str | Path, pcm: bytes, sample_rate_hz: int = PHONE_RATE_HZ) -> None:
    """Write 16-bit mono PCM to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(pcm)


def resample(pcm: bytes, from_hz: int, to_hz: int) -> bytes:
    """Resample 16-bit mono PCM with soxr (high quality, whole buffer)."""
    if from_hz == to_hz:
        return pcm
    samples = np.frombuffer(pcm, dtype=np.int16)
    out: np.ndarray = soxr.resample(samples, from_hz, to_hz, quality="HQ")
    return bytes(np.clip(out, -32768, 32767).astype(np.int16).tobytes())


def tone(frequency_hz: float, duration_s: float, *, sample_rate_hz: int = PHONE_RATE_HZ,
         amplitude: float = 0.5) -> bytes:
    """A sine tone as 16-bit mono PCM."""
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    samples = amplitude * 32767 * np.sin(2 * np.pi * frequency_hz * t)
    return samples.astype(np.int16).tobytes()


def silence(duration_s: float, *, sample_rate_hz: int = PHONE_RATE_HZ) -> bytes:
    """Digital silence as 16-bit mono PCM."""
    return bytes(2 * int(duration_s * sample_rate_hz))


def pcm_to_mulaw(pcm: bytes) -> bytes:
    """Encode 16-bit PCM as G.711 mu-law (same rate)."""
    return audioop.lin2ulaw(pcm, 2)


def mulaw_to_pcm(ulaw: bytes) -> bytes:
    """Decode G.711 mu-law to 16-bit PCM (same rate)."""
    return audioop.ulaw2lin(ulaw, 2)


def loud_frames(pcm: bytes, *, sample_rate_hz: int = PHONE_RATE_HZ, frame_ms: int = 20,
                threshold_dbfs: float = -45.0) -> np.ndarray:
    """For each whole ``frame_ms`` frame of 16-bit ``pcm``: louder than ``threshold_dbfs``?"""
    levels = frame_levels_dbfs(pcm, sample_rate_hz=sample_rate_hz, frame_ms=frame_ms)
    loud: np.ndarray = levels > threshold_dbfs
    return loud


def voiced_seconds(pcm: bytes, *, sample_rate_hz: int = PHONE_RATE_HZ, frame_ms: int = 20,
                   threshold_dbfs: float = -45.0) -> float:
    """Seconds of ``pcm`` whose 20 ms frames are louder than ``threshold_dbfs``."""
    loud = loud_frames(pcm, sample_rate_hz=sample_rate_hz, frame_ms=frame_ms,
                       threshold_dbfs=threshold_dbfs)
    return float(loud.sum()) * frame_ms / 1000


def trailing_quiet_seconds(pcm: bytes, *, sample_rate_hz: int = PHONE_RATE_HZ) -> float:
    """Seconds after the last loud 20 ms frame of ``pcm`` (all of it if none is loud)."""
    loud = np.flatnonzero(loud_frames(pcm, sample_rate_hz=sample_rate_hz))
    voiced_end_s = (int(loud[-1]) + 1) * 0.02 if loud.size else 0.0
    return len(pcm) / 2 / sample_rate_hz - voiced_end_s


def best_match(haystack: bytes, needle: bytes) -> float:
    """Highest normalised cross-correlation (0..1) of ``needle`` anywhere in ``haystack``.

    Both are 16-bit PCM at the same rate. A value above ~0.8 means the needle's audio
    is present, even after mu-law coding and resampling.
    """
    return max_normalized_correlation(
        np.frombuffer(haystack, dtype=np.int16), np.frombuffer(needle, dtype=np.int16)
    )
