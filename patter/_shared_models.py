"""Silero VAD and smart-turn analyzers whose ONNX sessions are loaded once per process.

Pipecat loads a fresh ONNX session for every analyzer it builds (~0.1 s of CPU and a few
MB each, per call). The sessions are read-only (``InferenceSession.run`` is thread-safe);
only the recurrent state and audio buffers belong to a call. These subclasses share the
session and keep the per-call state, so no maintained library does this for us.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from typing import Any

import onnxruntime as ort

from patter._pipecat import (
    BaseSmartTurn,
    LocalSmartTurnAnalyzerV3,
    SileroOnnxModel,
    SileroVADAnalyzer,
    VADAnalyzer,
    VADParams,
)


@functools.cache
def _silero_session() -> ort.InferenceSession:
    path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"], sess_options=options)


@functools.cache
def _smart_turn_session() -> ort.InferenceSession:
    path = resources.files("pipecat.audio.turn.smart_turn.data").joinpath(
        "smart-turn-v3.2-cpu.onnx"
    )
    # The end-of-turn decision is on the reply's critical path: every core (as Pipecat
    # does; 2 cores: ~60 ms instead of ~90 ms), but idle threads sleep instead of spinning.
    options = ort.SessionOptions()
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = os.cpu_count() or 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options)


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """``SileroVADAnalyzer`` with the process-wide ONNX session and its own recurrent state."""

    def __init__(self, *, sample_rate: int | None = None, params: VADParams | None = None) -> None:
        VADAnalyzer.__init__(self, sample_rate=sample_rate, params=params)
        model = SileroOnnxModel.__new__(SileroOnnxModel)
        model.session = _silero_session()
        model.sample_rates = [8000, 16000]
        model.reset_states()
        self._model = model
        self._windows_since_reset = 0
        self._low_confidence_windows = 0


class SharedSmartTurnAnalyzer(LocalSmartTurnAnalyzerV3):
    """``LocalSmartTurnAnalyzerV3`` (bundled model) with the process-wide ONNX session."""

    def __init__(self, **kwargs: Any) -> None:
        BaseSmartTurn.__init__(self, **kwargs)
        self._log_data = False
        self._session = _smart_turn_session()
