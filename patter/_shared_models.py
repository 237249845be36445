"""Silero VAD and smart-turn analyzers whose ONNX sessions are loaded once per process.

Pipecat loads a fresh ONNX session for every analyzer it builds (~0.1 s of CPU and a few
MB each, per call). The sessions are read-only (``InferenceSession.run`` is thread-safe);
only the recurrent state and audio buffers belong to a call. These subclasses share the
session and keep the per-call state, so no maintained library does this for us.

The sessions are loaded when first used, not when an analyzer is built: the first ONNX
session of a process costs ~30 MB (the runtime's own code and kernels) and smart-turn ~10
MB more, which a server waiting for its first call need not hold. ``load_shared_models``
loads both ahead, off the event loop, once the first call has come (``patter._prewarm``).
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import numpy as np
import onnxruntime as ort
from threadpoolctl import ThreadpoolController

from patter._pipecat import (
    BaseSmartTurn,
    LocalSmartTurnAnalyzerV3,
    SileroOnnxModel,
    SileroVADAnalyzer,
    VADAnalyzer,
    VADParams,
    VADState,
)
from patter._thread_priority import (
    lower_current_thread_priority,
    native_threads_at_background_priority,
)

# One lock per session: asked for while another thread loads it, a session is waited for
# (loaded once); the VAD on the event loop never waits for smart-turn's longer load.
_silero_loading = threading.Lock()
_smart_turn_loading = threading.Lock()

KEPT_WINDOWS = 64
"""Scores a shared VAD keeps for the user aggregator (2 s at 8 kHz): the aggregator runs
behind the barge-in guard by a few queue hops, more while the disclosure holds caller audio."""


def load_shared_models() -> None:
    """Load both shared sessions now (CPU-bound, ~0.2 s once per process: call it in a
    worker thread)."""
    _silero_session()
    _smart_turn_session()


def _silero_session() -> ort.InferenceSession:
    with _silero_loading:
        return _load_silero_session()


def _smart_turn_session() -> ort.InferenceSession:
    with _smart_turn_loading:
        return _load_smart_turn_session()


@functools.cache
def _smart_turn_thread() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="patter-smart-turn",
                              initializer=lower_current_thread_priority)


@functools.cache
def _blas_threads() -> ThreadpoolController:
    return ThreadpoolController()


@functools.cache
def _load_silero_session() -> ort.InferenceSession:
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=options)


def smart_turn_model_path() -> str:
    """The smart-turn ONNX model Pipecat ships, on disk."""
    return str(resources.files("pipecat.audio.turn.smart_turn.data").joinpath(
        "smart-turn-v3.2-cpu.onnx"))


@functools.cache
def _load_smart_turn_session() -> ort.InferenceSession:
    # The end-of-turn decision is on the reply's critical path: every core, as Pipecat does.
    # The threads sleep between operators rather than spin: on 2 cores with the other one
    # busy (live calls), spinning cost ~430 ms of CPU per inference against ~350 ms and was
    # no faster (~310 ms either way); with both cores idle it saved ~6 ms of ~170.
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The model is int8. On x86-64 CPUs without VNNI (AVX2-only servers such as AMD EPYC
    # before Zen 4) ONNX Runtime's default u8*s8 kernels add products in saturating 16-bit
    # lanes, and the verdict drifts: "So I was thinking that" scored 0.86 (finished) there
    # against 0.03 for the model's own arithmetic. This option makes ONNX Runtime use its
    # u8*u8 kernels on such CPUs (0.04; ~7 % more CPU per inference here, ~20 ms); it
    # leaves VNNI and ARM CPUs alone.
    options.add_session_config_entry("session.x64quantprecision", "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Its worker threads (and the smart-turn thread that runs it) yield to the event loop:
    # live calls' audio is paced on time while a turn is being judged.
    with native_threads_at_background_priority():
        return ort.InferenceSession(smart_turn_model_path(), sess_options=options)


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """``SileroVADAnalyzer`` with the process-wide ONNX session and its own recurrent state.

    Two savings over Pipecat's analyzer, which finds the same speech:

    * It scores audio in the caller's task instead of handing every 20 ms frame to a
      thread of its own: a 32 ms window takes Silero ~0.2 ms, less than the hand-off to
      the thread and back, and no thread is started per call.
    * In ``analyze_audio`` a window whose smoothed volume is under ``params.min_volume``
      is not given to Silero: it cannot count as speech whatever the model says (Pipecat
      requires both), so it scores 0 and counts as a quiet window for the model's reset.
      Silero then runs only while the caller is loud enough to be speaking, not through
      the silences that make up most of a call.
    * One analyzer serves both the user aggregator and the barge-in guard, which score
      the same caller audio in the same 32 ms windows (the guard's are aligned to the
      stream like Pipecat's). ``voice_confidence`` called directly (the guard, which sees
      each frame first) runs the model and keeps the score; the aggregator's
      ``analyze_audio`` then takes the kept score of the same window instead of running
      Silero a second time. One recurrent state follows the caller's speech.
    """

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        model = _SharedSileroModel.__new__(_SharedSileroModel)
        model.sample_rates = [8000, 16000]
        model.reset_states()
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0
        self._analyzing = False
        self._window_volume: float | None = None
        self._kept: OrderedDict[bytes, float] = OrderedDict()

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """Score ``buffer`` (appended to what is buffered) now; the VAD state after it."""
        self._analyzing = True
        try:
            return self._run_analyzer(buffer)
        finally:
            self._analyzing = False

    def voice_confidence(self, buffer: bytes) -> float:
        """Silero's confidence that ``buffer`` is speech (0 for a window too quiet to count,
        during ``analyze_audio``)."""
        if self._analyzing:
            # Pipecat's _run_analyzer asks for the confidence, then the smoothed volume, of
            # the same window: measure the volume first and hand it over unchanged.
            self._window_volume = super()._get_smoothed_volume(buffer)
            if self._window_volume < self._params.min_volume:
                self._maybe_reset_model(0.0)
                return 0.0
            kept = self._kept.pop(bytes(buffer), None)
            if kept is not None:
                return kept
        confidence: float = super().voice_confidence(buffer)
        if not self._analyzing:
            self._kept[bytes(buffer)] = confidence
            while len(self._kept) > KEPT_WINDOWS:
                self._kept.popitem(last=False)
        return confidence

    def _get_smoothed_volume(self, audio: bytes) -> float:
        if self._window_volume is not None:
            volume, self._window_volume = self._window_volume, None
            return volume
        return super()._get_smoothed_volume(audio)


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """``LocalSmartTurnAnalyzerV3`` (bundled model) with the process-wide ONNX session.

    Every call's inferences run on one process-wide thread, one at a time, instead of a
    thread per call: an inference already uses every core, and each one running at the
    same time holds its own ~20 MB of working memory in the runtime's arena (kept once
    grown). Turns ending in the same instant wait for one another (~60 ms each here).
    That thread and the runtime's own workers run at a lower priority than the event loop
    (``patter._thread_priority``), so an inference never delays the calls' audio.
    """

    def __init__(self, **kwargs: Any) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False

    @property
    def _model_executor(self) -> ThreadPoolExecutor:
        return _smart_turn_thread()

    def _predict_endpoint(self, audio_array: np.ndarray) -> dict[str, Any]:
        # The Whisper features are one small matrix product per turn (~3 ms on one thread).
        # Left to OpenBLAS's own threads, its idle workers spin for ~100 ms of CPU after it
        # (measured: 110 ms of CPU per turn against 8 ms on one thread), on every turn.
        with _blas_threads().limit(limits=1, user_api="blas"):
            result: dict[str, Any] = super()._predict_endpoint(audio_array)
        return result

    @property
    def _session(self) -> ort.InferenceSession:
        return _smart_turn_session()


class _SharedSileroModel(SileroOnnxModel):
    """Silero's model wrapper on the process-wide session (its state stays its own)."""

    @property
    def session(self) -> ort.InferenceSession:
        return _silero_session()
