"""The demo call on disk: a stereo WAV (caller left, what the caller heard right) and a
timeline picture (PNG), both placed on the simulated phone's timeline."""

from __future__ import annotations

import struct
import wave
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from patter.audio import PHONE_RATE_HZ
from patter.testing.phone import SimulatedPhone

_CALLER_RGB = (52, 101, 164)
_AGENT_RGB = (78, 154, 6)
_CUT_RGB = (204, 0, 0)
_PX_PER_S = 40


def _spans(phone: SimulatedPhone, start: str, stop: str) -> list[tuple[float, float]]:
    """(begin, end) monotonic times of each ``start``…``stop`` stretch of the timeline."""
    spans: list[tuple[float, float]] = []
    begin: float | None = None
    for event in phone.events:
        if event.kind == start and begin is None:
            begin = event.t
        elif event.kind == stop and begin is not None:
            spans.append((begin, event.t))
            begin = None
    if begin is not None:
        spans.append((begin, phone.events[-1].t))
    return spans


def _place(track: np.ndarray, at_s: float, pcm: np.ndarray) -> None:
    first = max(0, round(at_s * PHONE_RATE_HZ))
    piece = pcm[: max(0, len(track) - first)]
    track[first:first + len(piece)] = piece


def write_call_wav(path: Path, phone: SimulatedPhone, caller_lines: Sequence[bytes]) -> float:
    """Write the call as 16-bit stereo at 8 kHz: left the caller's lines (``caller_lines``,
    in the order they were said), right what played on the phone. Returns its length (s)."""
    t0 = phone.events[0].t
    length_s = phone.events[-1].t - t0 + 1.0
    left = np.zeros(round(length_s * PHONE_RATE_HZ), dtype=np.int16)
    right = np.zeros_like(left)
    for (begin, _), pcm in zip(_spans(phone, "caller_audio_started", "caller_audio_ended"),
                               caller_lines, strict=False):
        _place(left, begin - t0, np.frombuffer(pcm, dtype=np.int16))
    heard = np.frombuffer(phone.heard_pcm(), dtype=np.int16)
    used = 0
    for begin, end in _spans(phone, "playout_started", "playout_stopped"):
        size = round((end - begin) * PHONE_RATE_HZ)
        _place(right, begin - t0, heard[used:used + size])
        used += size
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(PHONE_RATE_HZ)
        wav.writeframes(np.column_stack((left, right)).tobytes())
    return length_s


def write_timeline_png(path: Path, phone: SimulatedPhone) -> None:
    """Draw the call: caller speech (blue, top row), agent speech heard (green, bottom
    row), each barge-in cut (a red line), with a tick every second."""
    t0 = phone.events[0].t
    width = round((phone.events[-1].t - t0 + 1.0) * _PX_PER_S)
    image = np.full((90, width, 3), 255, dtype=np.uint8)
    image[::, ::_PX_PER_S] = 225  # one-second grid

    def bar(spans: list[tuple[float, float]], rows: slice, rgb: tuple[int, int, int]) -> None:
        for begin, end in spans:
            image[rows, round((begin - t0) * _PX_PER_S):round((end - t0) * _PX_PER_S) + 1] = rgb

    bar(_spans(phone, "caller_audio_started", "caller_audio_ended"), slice(10, 40), _CALLER_RGB)
    bar(_spans(phone, "playout_started", "playout_stopped"), slice(50, 80), _AGENT_RGB)
    for cut in phone.events_of("clear_received"):
        x = round((cut.t - t0) * _PX_PER_S)
        image[:, max(0, x - 1):x + 2] = _CUT_RGB
    _write_png(path, image)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    """An 8-bit RGB PNG of ``rgb`` (height × width × 3), no dependency beyond zlib."""
    height, width, _ = rgb.shape
    rows = np.concatenate((np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, -1)), 1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(
            ">I", zlib.crc32(tag + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows.tobytes()))
                     + chunk(b"IEND", b""))
