"""Render a fixed sentence with any Pipecat TTS service, and cache the audio per (voice, text).

Used for the AI disclosure: it is the same on every call, so it is synthesised once and
then served from memory (and from disk across restarts) with no TTS round trip.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

from patter._log import get_logger
from patter._pipecat import (
    EndFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    Pipeline,
    PipelineParams,
    PipelineWorker,
    TTSAudioRawFrame,
    TTSService,
    TTSSpeakFrame,
    WorkerRunner,
)
from patter.audio import PHONE_RATE_HZ, resample

logger = get_logger(__name__)


class _AudioCollector(FrameProcessor):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chunks: list[tuple[bytes, int]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TTSAudioRawFrame):
            self.chunks.append((frame.audio, frame.sample_rate))
            return
        await self.push_frame(frame, direction)


async def render_speech(tts: TTSService, text: str, *, timeout_s: float = 30.0) -> bytes:
    """Synthesise ``text`` with ``tts`` (a fresh service instance) → 16-bit PCM at 8 kHz."""
    collector = _AudioCollector()
    worker = PipelineWorker(
        Pipeline([tts, collector]),
        params=PipelineParams(
            audio_in_sample_rate=PHONE_RATE_HZ, audio_out_sample_rate=PHONE_RATE_HZ
        ),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
        enable_turn_tracking=False,
    )
    await worker.queue_frames([TTSSpeakFrame(text), EndFrame()])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(runner.run(), timeout_s)
    if not collector.chunks:
        raise RuntimeError("the TTS service returned no audio for the disclosure")
    rate = collector.chunks[0][1]
    pcm = b"".join(chunk for chunk, _ in collector.chunks)
    return await resample(pcm, rate, PHONE_RATE_HZ)


def voice_fingerprint(tts: TTSService) -> str:
    """What tells one TTS service's voice from another's: its class and its settings
    (voice, model, language, speed...), stable across processes."""
    cls = type(tts)
    return f"{cls.__module__}.{cls.__qualname__}:{tts.settings!r}"


def default_cache_dir() -> Path:
    """``$PATTER_CACHE_DIR`` or ``~/.cache/patter``."""
    return Path(os.environ.get("PATTER_CACHE_DIR", Path.home() / ".cache" / "patter"))


class SpeechCache:
    """PCM per (vendor, voice, text), in memory and on disk; each entry rendered once."""

    def __init__(self, directory: Path | None = None) -> None:
        self._dir = directory or default_cache_dir()
        self._memory: dict[str, bytes] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @staticmethod
    def key(vendor: str, voice: str, text: str) -> str:
        """Stable cache key for one rendering."""
        return hashlib.sha256(f"{vendor}\x00{voice}\x00{text}".encode()).hexdigest()[:32]

    def peek(self, key: str) -> bytes | None:
        """The cached audio, from memory or disk, or None."""
        if key in self._memory:
            return self._memory[key]
        path = self._dir / f"{key}.pcm"
        if path.exists():
            self._memory[key] = path.read_bytes()
            return self._memory[key]
        return None

    async def get(self, key: str, tts: TTSService, text: str) -> bytes:
        """The audio for ``key``, rendering it with ``tts`` on a miss (once, even if raced)."""
        cached = self.peek(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self.peek(key)
            if cached is not None:
                return cached
            pcm = await render_speech(tts, text)
            self._memory[key] = pcm
            try:
                self._dir.mkdir(parents=True, exist_ok=True)
                tmp = self._dir / f"{key}.{os.getpid()}.tmp"
                tmp.write_bytes(pcm)
                tmp.replace(self._dir / f"{key}.pcm")
            except OSError as exc:
                logger.warning("could not write the speech cache", extra={"error": str(exc)})
            return pcm
