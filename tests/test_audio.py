"""``patter.audio``: the level of a block of samples, as every caller frame is measured."""

from __future__ import annotations

import numpy as np

from patter.audio import SILENCE_DBFS, frame_levels_dbfs, level_dbfs
from patter.testing.audio import synthesize_speech


def test_the_level_of_a_frame_is_its_rms_below_full_scale() -> None:
    full_scale_square = np.full(320, 32767, dtype=np.int16)
    half_scale_sine = (16384 * np.sin(np.arange(320) * 2 * np.pi * 440 / 8000)).astype(np.int16)

    assert abs(level_dbfs(full_scale_square)) < 0.01
    assert abs(level_dbfs(half_scale_sine) - (-9.03)) < 0.05  # 1/2 amplitude, sine: -6 - 3 dB


def test_the_level_of_speech_frames_agrees_with_the_whole_buffer_measure() -> None:
    speech = synthesize_speech("Do you have anything vegetarian on the menu?")
    frames = [speech[i:i + 640] for i in range(0, len(speech) - 639, 640)]

    one_by_one = np.array([level_dbfs(frame) for frame in frames])

    assert np.allclose(one_by_one, frame_levels_dbfs(speech, sample_rate_hz=8000, frame_ms=40),
                       atol=0.01)


def test_digital_silence_and_an_empty_block_read_as_silence() -> None:
    assert level_dbfs(bytes(640)) == SILENCE_DBFS
    assert level_dbfs(b"") == SILENCE_DBFS
