"""The shared models: Pipecat's speech states with Silero run only where they can change,
and smart-turn's verdicts without idle BLAS threads spinning after each."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from pipecat.audio.turn.smart_turn import local_smart_turn_v3
from threadpoolctl import threadpool_info

from patter._pipecat import SileroVADAnalyzer, VADAnalyzer
from patter._shared_models import (
    SharedSileroVADAnalyzer,
    SharedSmartTurnAnalyzer,
    smart_turn_model_path,
)
from patter.processors.barge_in import barge_in_vad_params
from patter.testing.audio import synthesize_speech

FRAME_BYTES = 320  # 20 ms at 8 kHz, as Twilio sends it


def caller_audio() -> bytes:
    """Three lines with a second of quiet line noise before, between and after."""
    parts: list[bytes] = []
    for text in ("Hello, I would like to book a table for two tonight.",
                 "Do you have anything vegetarian on the menu?", "No."):
        parts += [bytes(16000), synthesize_speech(text)]
    parts.append(bytes(16000))
    samples = np.frombuffer(b"".join(parts), np.int16).astype(np.float64)
    noise = np.random.default_rng(1).normal(0, 30, samples.size)
    return np.clip(samples + noise, -32768, 32767).astype(np.int16).tobytes()


async def states(vad: VADAnalyzer, pcm: bytes) -> list[str]:
    vad.set_sample_rate(8000)
    return [(await vad.analyze_audio(pcm[i:i + FRAME_BYTES])).name
            for i in range(0, len(pcm), FRAME_BYTES)]


def onsets(frame_states: list[str]) -> list[int]:
    return [i for i in range(1, len(frame_states))
            if frame_states[i] == "SPEAKING" and frame_states[i - 1] in ("QUIET", "STARTING")]


async def test_shared_vad_finds_the_speech_pipecats_silero_finds() -> None:
    pcm = caller_audio()
    pipecat = await states(SileroVADAnalyzer(params=barge_in_vad_params()), pcm)
    shared = await states(SharedSileroVADAnalyzer(params=barge_in_vad_params()), pcm)

    assert onsets(shared) == onsets(pipecat)
    agree = sum(a == b for a, b in zip(shared, pipecat, strict=True))
    assert agree >= 0.99 * len(pipecat)


async def test_quiet_line_noise_is_scored_without_running_silero() -> None:
    vad = SharedSileroVADAnalyzer(params=barge_in_vad_params())
    noise = np.random.default_rng(2).normal(0, 10, 8000 * 3).astype(np.int16).tobytes()  # -70 dBFS

    assert set(await states(vad, noise)) == {"QUIET"}
    assert vad._model._last_batch_size == 0  # the model never ran


def test_voice_confidence_asked_directly_always_runs_silero() -> None:
    vad = SharedSileroVADAnalyzer(sample_rate=8000)
    vad.set_sample_rate(8000)

    assert vad.voice_confidence(bytes(512)) < 0.5
    assert vad._model._last_batch_size == 1  # the model ran, quiet as the window was


class _CountedModel:
    """Silero's model wrapper, counting the windows it scores."""

    def __init__(self, model: object) -> None:
        self.model, self.runs = model, 0

    def __call__(self, *args: object) -> object:
        self.runs += 1
        return self.model(*args)  # type: ignore[operator]

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)


async def test_a_vad_shared_with_the_barge_in_guard_scores_each_window_once() -> None:
    pcm = caller_audio()
    alone = SharedSileroVADAnalyzer(params=barge_in_vad_params())
    alone_model = alone._model = _CountedModel(alone._model)
    alone_states = await states(alone, pcm)

    shared = SharedSileroVADAnalyzer(params=barge_in_vad_params())
    shared_model = shared._model = _CountedModel(shared._model)
    shared.set_sample_rate(8000)
    window = shared.num_frames_required() * 2
    shared_states, guard_windows = [], 0
    for i in range(0, len(pcm), FRAME_BYTES):  # the guard scores loud windows first
        end = i + FRAME_BYTES
        if end // window > i // window:
            start = end // window * window - window
            if np.abs(np.frombuffer(pcm[start:start + window], np.int16)).max() > 1000:
                shared.voice_confidence(pcm[start:start + window])
                guard_windows += 1
        shared_states.append((await shared.analyze_audio(pcm[i:end])).name)

    assert onsets(shared_states) == onsets(alone_states)
    assert guard_windows > 100
    assert shared_model.runs <= alone_model.runs + 5  # not twice: the guard's scores are reused


def test_smart_turn_computes_its_features_on_one_blas_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    features = local_smart_turn_v3.compute_whisper_log_mel_features
    blas_threads: list[int] = []

    def probed_features(*args: object, **kwargs: object) -> np.ndarray:
        blas_threads.extend(lib["num_threads"] for lib in threadpool_info()
                            if lib["user_api"] == "blas")
        return features(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(local_smart_turn_v3, "compute_whisper_log_mel_features", probed_features)
    analyzer = SharedSmartTurnAnalyzer()
    analyzer.set_sample_rate(8000)
    speech = np.frombuffer(synthesize_speech("No."), np.int16).astype(np.float32) / 32768

    verdict = analyzer._predict_endpoint(speech)

    assert verdict["prediction"] in (0, 1)
    assert blas_threads and set(blas_threads) == {1}


def test_smart_turns_threads_sleep_between_operators_instead_of_spinning() -> None:
    # Spinning threads take CPU from the live calls' audio on a busy machine (~80 ms more
    # per inference on 2 cores) and bought no speed there.
    session = SharedSmartTurnAnalyzer()._session

    options = session.get_session_options()

    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("line", ["So I was thinking that", "Thank you, goodbye."])
def test_smart_turn_scores_a_line_as_the_models_own_arithmetic_does(line: str) -> None:
    # The reference runs the model unoptimised: every quantize/dequantize step in float, as
    # the model defines it. ONNX Runtime's default int8 kernels saturate on x86-64 CPUs
    # without VNNI: on an AMD EPYC these lines scored 0.86 and 0.54 (finished) against the
    # reference's 0.03 and 0.13.
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(smart_turn_model_path(), sess_options=options)
    analyzer = SharedSmartTurnAnalyzer()
    analyzer.set_sample_rate(8000)
    speech = np.frombuffer(synthesize_speech(line), np.int16).astype(np.float32) / 32768

    shared_probability = analyzer._predict_endpoint(speech)["probability"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SharedSmartTurnAnalyzer, "_session", reference)
        reference_probability = analyzer._predict_endpoint(speech)["probability"]

    assert shared_probability == pytest.approx(reference_probability, abs=0.1)
