"""The demo call on disk: a stereo WAV (caller left, what the caller heard right) and a
timeline picture (PNG), both placed on the simulated phone's timeline."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from patter.audio import PHONE_RATE_HZ
from patter.testing.phone import SimulatedPhone

_CALLER_RGB = (52, 101, 164)
_AGENT_RGB = (78, 154, 6)
_CUT_RGB = (204, 0, 0)
_GRID_RGB = (225, 225, 225)
_PX_PER_S = 40
_LEFT_PX = 90
"""Room for the row labels, left of the timeline."""


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
    """Draw the call with Pillow (a Pipecat dependency): caller speech (blue, top row),
    agent speech heard (green, bottom row), each barge-in cut (a red line), labelled,
    with a tick and the time every five seconds."""
    t0 = phone.events[0].t
    length_s = phone.events[-1].t - t0 + 1.0
    image = Image.new("RGB", (_LEFT_PX + round(length_s * _PX_PER_S), 130), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)

    def x_at(t: float) -> int:
        return _LEFT_PX + round((t - t0) * _PX_PER_S)

    for second in range(int(length_s) + 1):
        x = _LEFT_PX + second * _PX_PER_S
        draw.line([(x, 20), (x, 100)], fill=_GRID_RGB)
        if second % 5 == 0:
            draw.text((x, 104), f"{second} s", fill="black", font=font, anchor="mt")
    rows = (("caller", "caller_audio_started", "caller_audio_ended", 24, _CALLER_RGB),
            ("agent heard", "playout_started", "playout_stopped", 64, _AGENT_RGB))
    for label, start, stop, top, rgb in rows:
        draw.text((6, top + 15), label, fill="black", font=font, anchor="lm")
        for begin, end in _spans(phone, start, stop):
            draw.rectangle([(x_at(begin), top), (x_at(end), top + 30)], fill=rgb)
    for cut in phone.events_of("clear_received"):
        x = x_at(cut.t)
        draw.line([(x, 14), (x, 100)], fill=_CUT_RGB, width=3)
        draw.text((x + 4, 2), "barge-in cut", fill=_CUT_RGB, font=font)
    image.save(path, format="PNG")
