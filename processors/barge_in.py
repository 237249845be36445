"""Barge-in guard: the agent falls silent at the caller's first sound; its own echo is kept out."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from patter._log import get_logger
from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InputAudioRawFrame,
    InterruptionFrame,
    SileroVADAnalyzer,
    StartFrame,
    VADAnalyzer,
    VADParams,
)
from patter.audio import PHONE_RATE_HZ, level_dbfs
from patter.errors import PatterConfigError
from patter.processors._echo import EchoDetector
from patter.processors.agent_speech import AgentSpeech, SpeechFromFrames

logger = get_logger(__name__)

VAD_MIN_VOLUME = 0.5
"""Loudness (0..1 for -110..-10 LUFS) speech must reach to count. Pipecat's default (0.6)
is reached ~0.2 s into speech that follows silence (its volume is smoothed), which delays
every barge-in and misses short words ("No."); 0.5 (-60 LUFS) is still above line noise."""
ECHO_FLOOR_DBFS = -60.0
"""Quieter caller frames are not checked for echo (nothing to mistake for speech)."""
SUPPORTED_RATES_HZ = (8000, 16000)
"""Caller audio rates the guard's Silero VAD can score."""
SPEECH_CONFIDENCE = 0.7
"""Silero's confidence that a 32 ms window is speech (Pipecat's VAD default)."""
SPEECH_GOES_ON_CONFIDENCE = SPEECH_CONFIDENCE - 0.15
"""Once a window scored speech, the windows after it go on counting down to this score: the
hysteresis Silero's own ``get_speech_timestamps`` applies (threshold - 0.15). Without it one
window dipping to ~0.6 mid-word started the count again, and the cut came ~300 ms late."""


def barge_in_vad_params(min_speech_s: float = 0.25) -> VADParams:
    """VAD settings for the user aggregator: speech counts (and interrupts the agent) once
    it has lasted ``min_speech_s``; shorter sounds never do."""
    return VADParams(start_secs=min_speech_s, min_volume=VAD_MIN_VOLUME)


class _State(enum.Enum):
    LISTENING = "listening"  # no caller sound
    PAUSED = "paused"  # caller sound: the agent is held back until confirmed or let go
    LATCHED = "latched"  # sound goes on but was handled: wait for quiet before acting again


class BargeInGuard(FrameProcessor):
    """Silence the agent at the caller's first sound; interrupt it once that is speech.

    Consumes (downstream): ``InputAudioRawFrame`` (mono 16-bit PCM at 8 or 16 kHz).
    Emits: the same frames, in order; a frame that is only the echo of the agent's own
    voice (see ``EchoDetector``; 8 kHz audio) is replaced by silence, so VAD and STT never
    take the agent for the caller. Frames where the caller speaks over the echo pass
    unchanged. Then, while the agent is speaking:

    1. After ``onset_ms`` of caller sound above the noise floor: ``speech.pause()``. The
       Twilio output stops feeding Twilio; the caller stops hearing the agent within the
       output's lead (~0.1 s).
    2. Once ``min_speech_s`` of it is speech (Silero, like the user aggregator's VAD, but
       counted from the sound's onset): an ``InterruptionFrame`` both ways, at once — the
       output clears Twilio's buffer and cuts the turn where the caller heard it; LLM and
       TTS work in flight is cancelled.
    3. If it is not speech — a cough, a click, a short noise: ``speech.resume()`` after
       ``quiet_resume_ms`` of quiet (or at most ``max_pause_ms`` into steady noise). The
       agent goes on exactly where it stopped; nothing was cleared or lost.

    The AI disclosure is never paused or interrupted (the Twilio transport refuses while
    it plays). Watches: ``InterruptionFrame`` from elsewhere (VAD, keypad): the pause
    became a cut; without ``speech``, ``BotStartedSpeakingFrame`` /
    ``BotStoppedSpeakingFrame`` tell when the agent speaks (see ``SpeechFromFrames``).
    Passes through: every other frame, unchanged. Place it right after the transport input.
    At an input rate other than 8 or 16 kHz it reports a ``PatterConfigError`` (an
    ``ErrorFrame`` upstream) and lets every frame pass untouched.

    Args:
        speech: The agent's voice, to pause and resume (the Twilio transport's ``speech``);
            default: followed from frames, never paused.
        min_speech_s: Speech needed to interrupt (``agent(min_barge_in_s=...)``).
        onset_ms: Caller sound needed before pausing.
        min_level_dbfs: Sound below this level never counts as the caller.
        snr_db: How far above the noise floor a frame must be to count as caller sound.
        quiet_resume_ms: Quiet after which an unconfirmed pause is a false alarm.
        max_pause_ms: Longest pause without a confirmed interruption (steady noise).
        echo: The echo detector (default: a new one, fed by ``speech``).
        vad: The Silero analyzer scoring speech (default: a new one); its rate is set
            from the audio. Patter passes the user aggregator's, which then reuses the
            guard's scores (``patter._shared_models.SharedSileroVADAnalyzer``).
    """

    def __init__(
        self,
        speech: AgentSpeech | None = None,
        *,
        min_speech_s: float = 0.25,
        onset_ms: float = 40.0,
        min_level_dbfs: float = -42.0,
        snr_db: float = 12.0,
        quiet_resume_ms: float = 150.0,
        max_pause_ms: float = 1200.0,
        echo: EchoDetector | None = None,
        vad: VADAnalyzer | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        frames_speech = SpeechFromFrames()
        self.speech: AgentSpeech = speech if speech is not None else frames_speech
        """The agent's voice the guard pauses and resumes."""
        self._frames_speech = frames_speech if speech is None else None
        self._min_speech_ms = min_speech_s * 1000
        self._onset_ms = onset_ms
        self._min_level_dbfs = min_level_dbfs
        self._snr_db = snr_db
        self._quiet_resume_ms = quiet_resume_ms
        self._max_pause_ms = max_pause_ms
        self._echo = echo or EchoDetector(floor_dbfs=min_level_dbfs)
        self.vad = vad or SileroVADAnalyzer()
        """The Silero analyzer (reuse it in a replacement guard to skip loading a model)."""
        self._sample_rate_hz = 0  # not known until the pipeline starts
        self._window = bytearray()
        self._window_bytes = 0
        self._state = _State.LISTENING
        self._loud_ms = 0.0
        self._quiet_ms = 0.0
        self._paused_ms = 0.0
        self._speech_ms = 0.0
        self._sound_ms = 0.0  # caller sound in a row, counted
        self._speech_from_ms = 0.0  # where in it the speech count starts
        self._floor_dbfs = -70.0
        self.pauses = 0
        """How many times the guard paused the agent (diagnostics)."""
        self.interruptions = 0
        """How many times it interrupted the agent (diagnostics)."""
        self.echo_frames = 0
        """How many caller frames were muted as echo (diagnostics)."""
        self._enabled = True

    async def disable(self) -> None:
        """Never pause or interrupt the agent again (a machine answered: its greeting must
        not cut the voicemail). Frames still pass unchanged."""
        self._enabled = False
        if self._state is _State.PAUSED:
            self._state = _State.LISTENING
            await self.speech.resume()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Watch caller audio and interruptions; forward every frame."""
        await super().process_frame(frame, direction)
        if self._frames_speech is not None:
            self._frames_speech.observe(frame)
        if isinstance(frame, StartFrame):
            await self.push_frame(frame, direction)
            self.speech.feed_echo(self._echo.reference)
            await self._use_rate(self.processor_setup.audio_in_sample_rate)
            return
        if isinstance(frame, InterruptionFrame):
            if self._state is _State.PAUSED:
                self._state = _State.LATCHED
        elif (
            isinstance(frame, InputAudioRawFrame)
            and direction == FrameDirection.DOWNSTREAM
            and self._enabled
        ):
            await self._on_audio(frame)
        await self.push_frame(frame, direction)

    async def _use_rate(self, sample_rate_hz: int) -> None:
        """Score speech at ``sample_rate_hz``; at a rate Silero cannot score, report a
        configuration error once and stand aside."""
        if sample_rate_hz not in SUPPORTED_RATES_HZ:
            self._enabled = False
            error = PatterConfigError(
                f"BargeInGuard needs caller audio at 8000 or 16000 Hz, got {sample_rate_hz} Hz: "
                "set PipelineParams(audio_in_sample_rate=8000 or 16000) or the input "
                "transport's audio_in_sample_rate."
            )
            logger.error("barge-in guard disabled: unsupported sample rate",
                         extra={"sample_rate_hz": sample_rate_hz})
            await self.push_error(str(error), exception=error)
            return
        self._sample_rate_hz = sample_rate_hz
        self.vad.set_sample_rate(sample_rate_hz)
        self._window_bytes = self.vad.num_frames_required() * 2
        self._window.clear()

    async def _on_audio(self, frame: InputAudioRawFrame) -> None:
        samples = np.frombuffer(frame.audio, dtype=np.int16)
        if samples.size == 0 or frame.num_channels != 1:
            return
        if frame.sample_rate != self._sample_rate_hz:
            await self._use_rate(frame.sample_rate)
            if not self._enabled:
                return
        frame_ms = samples.size * 1000 / frame.sample_rate
        level = level_dbfs(samples)
        self._floor_dbfs = min(level, self._floor_dbfs + 0.02 * frame_ms / 20)
        loud = level > max(self._min_level_dbfs, self._floor_dbfs + self._snr_db)
        if frame.sample_rate == PHONE_RATE_HZ:  # the echo reference is phone audio
            if level <= ECHO_FLOOR_DBFS:
                self._echo.hear(samples)
            elif self._echo.is_echo(samples):
                self.echo_frames += 1
                frame.audio = bytes(len(frame.audio))
                loud = False
        # Latched, the count is never read, and only quiet (which resets it) ends the latch:
        # Silero need not score the caller's sound (most of a turn, after an interruption).
        counted = loud and self._state is not _State.LATCHED
        self._count_speech(frame.audio, counted)
        await self._step(loud, frame_ms)

    def _count_speech(self, audio: bytes, counted: bool) -> None:
        """Milliseconds of the caller's sound (``counted`` audio in a row) since its onset,
        up to the last window Silero scored speech; a window of the sound scored otherwise
        starts the count again (once speech is counted, only a window under
        ``SPEECH_GOES_ON_CONFIDENCE`` does). The windows follow the stream from its start,
        as the user aggregator's VAD cuts them, so a VAD shared with it scores each window
        once; a window reaching back before the onset does not start the count again."""
        self._window += audio
        if counted:
            self._sound_ms += len(audio) / 2 * 1000 / self._sample_rate_hz
        else:
            self._sound_ms = self._speech_from_ms = self._speech_ms = 0.0
        while len(self._window) >= self._window_bytes:
            window = bytes(self._window[: self._window_bytes])
            del self._window[: self._window_bytes]
            if not counted:
                continue
            end_ms = self._sound_ms - len(self._window) / 2 * 1000 / self._sample_rate_hz
            needed = SPEECH_GOES_ON_CONFIDENCE if self._speech_ms > 0 else SPEECH_CONFIDENCE
            if self.vad.voice_confidence(window) >= needed:
                self._speech_ms = end_ms - self._speech_from_ms
            elif end_ms >= self._window_bytes / 2 * 1000 / self._sample_rate_hz:
                self._speech_from_ms, self._speech_ms = end_ms, 0.0

    async def _step(self, loud: bool, frame_ms: float) -> None:
        if self._state is _State.PAUSED and not self.speech.paused:
            self._state = _State.LATCHED  # cut by an interruption from elsewhere
        self._quiet_ms = 0.0 if loud else self._quiet_ms + frame_ms
        if self._state is _State.LISTENING:
            self._loud_ms = self._loud_ms + frame_ms if loud else 0.0
            if self._loud_ms >= self._onset_ms and self.speech.pause():
                self._state, self._paused_ms = _State.PAUSED, 0.0
                self.pauses += 1
                logger.debug("caller sound: agent paused")
        elif self._state is _State.PAUSED:
            self._paused_ms += frame_ms
            if self._speech_ms >= self._min_speech_ms and self.speech.speaking:
                self._state = _State.LATCHED
                self.interruptions += 1
                logger.debug("caller speech: agent interrupted",
                             extra={"paused_ms": round(self._paused_ms)})
                await self.broadcast_interruption()
                if self._frames_speech is not None:  # it does not see its own frames
                    self._frames_speech.interrupted()
            elif self._quiet_ms >= self._quiet_resume_ms or self._paused_ms >= self._max_pause_ms:
                self._state = _State.LATCHED if loud else _State.LISTENING
                self._loud_ms = 0.0
                logger.debug("no speech followed: agent resumed",
                             extra={"paused_ms": round(self._paused_ms)})
                await self.speech.resume()
        elif self._quiet_ms >= self._quiet_resume_ms:
            self._state, self._loud_ms = _State.LISTENING, 0.0
