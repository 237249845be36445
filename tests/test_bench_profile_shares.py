"""`benchmarks/profile_shares.py`: py-spy samples sorted by part of a call (no profiler run)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from profile_shares import OTHER, part_of, shares, table  # noqa: E402

LOOP = "thread (1): MainThread;<module> (_bot_process.py:85);run (asyncio/runners.py:190)"
PUSH = "FrameProcessor.push_frame (pipecat/processors/frame_processor.py:1035)"
SILERO = "SharedSileroVADAnalyzer.voice_confidence (patter/_shared_models.py:167)"
ORT = "Session.run (onnxruntime/capi/onnxruntime_inference_collection.py:406)"


def test_the_innermost_frame_of_a_part_decides() -> None:
    # Silero runs on the same ONNX runtime as smart-turn: its caller names the part.
    assert part_of(f"{LOOP};{PUSH};{SILERO};{ORT}".split(";")) == "Silero VAD and its loudness"
    smart_turn = "thread (2): patter-smart-turn_0;Analyzer._predict_endpoint (x.py:1)"
    assert part_of(f"{smart_turn};{ORT}".split(";")) == "smart-turn (end-of-turn model)"
    # The guard's level sits inside Pipecat's push: the guard's, not the push's.
    level = "BargeInGuard._on_audio (processors/barge_in.py:204);level_dbfs (patter/audio.py:33)"
    assert part_of(f"{LOOP};{PUSH};{level}".split(";")) == "barge-in guard, echo check, levels"
    assert part_of(f"{LOOP};{PUSH}".split(";")) == "Pipecat frame passing"
    assert part_of(["thread (1): MainThread"]) == OTHER


def test_idle_waits_are_left_out(tmp_path: Path) -> None:
    assert part_of(f"{LOOP};EpollSelector.select (selectors.py:468)".split(";")) is None
    worker = "thread (3): asyncio_0;_worker (concurrent/futures/thread.py:81)"
    assert part_of(worker.split(";")) is None
    profile = tmp_path / "bot.raw"
    profile.write_text(f"{LOOP};EpollSelector.select (selectors.py:468) 90\n"
                       f"{LOOP};{PUSH} 3\n{LOOP};{PUSH};{SILERO} 1\n")
    counts, busy = shares(profile)
    assert busy == 4
    assert counts["Pipecat frame passing"] == 3
    assert "| Pipecat frame passing | 75.0 % |" in table([profile])
