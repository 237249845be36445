"""Barge-in guard: the agent falls silent at the caller's first sound; its own echo is kept out."""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

import numpy as np

from patter._correlation import best_alignment
from patter._log import get_logger
from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InputAudioRawFrame,
    InterruptionFrame,
    VADParams,
)
from patter.transports.playout import PlayoutLedger

logger = get_logger(__name__)

VAD_MIN_VOLUME = 0.5
"""Loudness (0..1 for -110..-10 LUFS) speech must reach to count. Pipecat's default (0.6)
is reached ~0.2 s into speech that follows silence (its volume is smoothed), which delays
every barge-in and misses short words ("No."); 0.5 (-60 LUFS) is still above line noise."""
ECHO_FLOOR_DBFS = -60.0
"""Quieter caller frames are not checked for echo (nothing to mistake for speech)."""


def barge_in_vad_params(min_speech_s: float = 0.25) -> VADParams:
    """VAD settings for the user aggregator: speech counts (and interrupts the agent) once
    it has lasted ``min_speech_s``; shorter sounds never do."""
    return VADParams(start_secs=min_speech_s, min_volume=VAD_MIN_VOLUME)


class _State(enum.Enum):
    LISTENING = "listening"  # no caller sound
    PAUSED = "paused"  # caller sound while the agent spoke: the agent is held back
    LATCHED = "latched"  # sound goes on but was handled: wait for quiet before acting again


class BargeInGuard(FrameProcessor):
    """Pause the agent at the first sign of caller sound; mute the echo of its own voice.

    Consumes (downstream): ``InputAudioRawFrame`` (mono 16-bit PCM).
    Emits: the same frames, in order. A frame that is only the echo of the agent's own
    voice — the agent audio just played, delayed and scaled, explains it to within
    ``echo_residual_db`` — is replaced by silence, so VAD and STT never take the agent
    for the caller. Frames where the caller speaks over the echo pass unchanged.
    Acts: after ``onset_ms`` of caller sound above the noise floor, ``ledger.pause()``:
    the output stops feeding Twilio, and the caller stops hearing the agent within the
    output's lead. A confirmed interruption (``InterruptionFrame``: the VAD heard at least
    its minimum speech) then clears Twilio's buffer. If none comes — a cough, a click,
    a short noise — ``ledger.resume()`` after ``quiet_resume_ms`` of quiet (or at most
    ``max_pause_ms`` after the pause): the agent goes on exactly where it stopped.
    The AI disclosure is never paused (the ledger refuses while it plays).
    Watches: ``InterruptionFrame`` in either direction (the pause became a clear).
    Passes through: every other frame, unchanged.
    Place it right after the transport input.

    Args:
        ledger: The playout ledger shared with the Twilio output.
        onset_ms: Caller sound needed before pausing.
        min_level_dbfs: Sound below this level never counts as the caller.
        snr_db: How far above the noise floor a frame must be to count as caller sound.
        quiet_resume_ms: Quiet after which an unconfirmed pause is a false alarm.
        max_pause_ms: Longest pause without a confirmed interruption (steady noise).
        echo_correlation: Least correlation with played agent audio for an echo to be sought.
        echo_window_ms: How far back in the played audio an echo may come from.
        echo_block_ms: How much recent caller audio is matched against the played audio.
        echo_residual_db: How far below the frame the rest, echo removed, must be for the
            frame to count as echo.
    """

    def __init__(
        self,
        ledger: PlayoutLedger,
        *,
        onset_ms: float = 40.0,
        min_level_dbfs: float = -42.0,
        snr_db: float = 12.0,
        quiet_resume_ms: float = 260.0,
        max_pause_ms: float = 1200.0,
        echo_correlation: float = 0.5,
        echo_window_ms: float = 600.0,
        echo_block_ms: float = 200.0,
        echo_residual_db: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._ledger = ledger
        self._onset_ms = onset_ms
        self._min_level_dbfs = min_level_dbfs
        self._snr_db = snr_db
        self._quiet_resume_ms = quiet_resume_ms
        self._max_pause_ms = max_pause_ms
        self._echo_correlation = echo_correlation
        self._echo_window_ms = echo_window_ms
        self._state = _State.LISTENING
        self._loud_ms = 0.0
        self._quiet_ms = 0.0
        self._paused_ms = 0.0
        self._floor_dbfs = -70.0
        block_frames = max(1, round(echo_block_ms / 20))  # the line was silent before the call
        self._recent: deque[np.ndarray] = deque(
            [np.zeros(160, dtype=np.int16)] * block_frames, maxlen=block_frames
        )
        self._echo_residual_db = echo_residual_db
        self.pauses = 0
        """How many times the guard paused the agent (diagnostics)."""
        self.echo_frames = 0
        """How many caller frames were muted as echo (diagnostics)."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Watch caller audio and interruptions; forward every frame."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            if self._state is _State.PAUSED:
                self._state = _State.LATCHED
        elif isinstance(frame, InputAudioRawFrame) and direction == FrameDirection.DOWNSTREAM:
            await self._on_audio(frame)
        await self.push_frame(frame, direction)

    async def _on_audio(self, frame: InputAudioRawFrame) -> None:
        samples = np.frombuffer(frame.audio, dtype=np.int16)
        if samples.size == 0:
            return
        frame_ms = samples.size * 1000 / frame.sample_rate
        level = _dbfs(samples)
        self._floor_dbfs = min(level, self._floor_dbfs + 0.02 * frame_ms / 20)
        self._recent.append(samples)
        loud = level > max(self._min_level_dbfs, self._floor_dbfs + self._snr_db)
        if level > ECHO_FLOOR_DBFS and self._is_echo(frame.sample_rate):
            self.echo_frames += 1
            frame.audio = bytes(len(frame.audio))
            loud = False
        await self._step(loud, frame_ms)

    async def _step(self, loud: bool, frame_ms: float) -> None:
        if self._state is _State.PAUSED and not self._ledger.paused:
            self._state = _State.LATCHED  # cleared by an interruption
        self._quiet_ms = 0.0 if loud else self._quiet_ms + frame_ms
        if self._state is _State.LISTENING:
            self._loud_ms = self._loud_ms + frame_ms if loud else 0.0
            if self._loud_ms >= self._onset_ms and self._ledger.pause():
                self._state, self._paused_ms = _State.PAUSED, 0.0
                self.pauses += 1
                logger.debug("caller sound: agent paused")
        elif self._state is _State.PAUSED:
            self._paused_ms += frame_ms
            if self._quiet_ms >= self._quiet_resume_ms or self._paused_ms >= self._max_pause_ms:
                self._state = _State.LATCHED if loud else _State.LISTENING
                self._loud_ms = 0.0
                logger.debug("no interruption followed: agent resumed",
                             extra={"paused_ms": round(self._paused_ms)})
                await self._ledger.resume()
        elif self._quiet_ms >= self._quiet_resume_ms:
            self._state, self._loud_ms = _State.LISTENING, 0.0

    def _is_echo(self, sample_rate_hz: int) -> bool:
        """Whether the latest caller frame is only the agent's echo.

        The recent caller audio is matched against the agent audio just played; at the
        best offset the echo is scaled and subtracted from the latest frame. What is left
        is the caller: if it is faint, the frame was echo.
        """
        if sample_rate_hz != 8000:
            return False
        mic = np.concatenate(self._recent).astype(np.float64)
        played = np.frombuffer(
            self._ledger.played_audio(self._echo_window_ms + len(mic) / 8), dtype=np.int16
        ).astype(np.float64)
        if played.size < mic.size or not played.any():
            return False
        offset, correlation = best_alignment(played, mic)
        if correlation < self._echo_correlation:
            return False
        latest = mic[-len(self._recent[-1]):]
        reference = played[offset + len(mic) - len(latest): offset + len(mic)]
        energy = float(reference @ reference)
        if energy == 0:
            return False
        residual = latest - (reference @ latest) / energy * reference
        return _dbfs(residual) < max(self._min_level_dbfs, _dbfs(latest) - self._echo_residual_db)


def _dbfs(samples: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) / 32768.0
    return 20 * float(np.log10(max(rms, 1e-9)))
