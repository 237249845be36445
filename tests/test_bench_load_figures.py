"""`benchmarks/load.py`'s figures: pacing lateness, pooling, tables (no calls, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _load_figures import (  # noqa: E402
    CallResult,
    LoadResult,
    aggregate,
    load_table,
    median_round,
    pacing_lateness_ms,
    percentile,
    round_orders,
    rounds_table,
    within_ceiling,
)

FRAME = 320  # 40 ms of mu-law


def paced(start: float, count: int, *, lead: int = 0) -> list[tuple[float, int]]:
    """``count`` 40 ms frames from ``start``: ``lead`` of them at once, the rest in real time."""
    return [(start + max(0, i - lead) * 0.04, FRAME) for i in range(count)]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 99) == 0.0
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99


def test_a_lead_sent_at_once_then_real_time_pacing_is_not_late() -> None:
    lateness = pacing_lateness_ms(paced(10.0, 50, lead=6))
    assert len(lateness) == 50 - 13  # the first 0.5 s of audio is the unscored lead-in
    assert max(lateness) < 1e-6


def test_a_delayed_frame_is_late_by_its_delay_and_a_pause_starts_a_new_utterance() -> None:
    frames = paced(0.0, 30)
    frames[20] = (frames[20][0] + 0.03, FRAME)
    frames += paced(5.0, 30)  # a new utterance: its own schedule
    lateness = pacing_lateness_ms(frames)
    assert round(max(lateness) * 1000) == 30_000  # 30 ms, in µs to dodge float noise
    assert sorted(lateness)[-2] < 1e-6


def test_pooled_figures_ratios_and_ceiling() -> None:
    calls = [CallResult(latencies_ms=[400, 500], lateness_ms=[1, 2]),
             CallResult(latencies_ms=[3500], dead_air=1, lateness_ms=[30])]
    result = aggregate("patter", calls, cpu_s=3.0, wall_s=10.0, rss_before_mb=90,
                       rss_warm_mb=100, rss_peak_mb=140, lag_ms=[1, 2])
    figures = result.figures()
    assert figures["cpu_pct_per_call"] == 15.0
    assert figures["cpu_s_per_call"] == 1.5
    assert figures["growth_mb_per_call"] == 20.0  # from after the warm-up call
    assert figures["first_call_mb"] == 10.0
    assert figures["latency_median_ms"] == 500
    assert figures["latency_worst_ms"] == 3500
    assert figures["jitter_p99_ms"] == 30
    assert figures["dead_air"] == 1
    single = aggregate("patter", calls[:1], cpu_s=1, wall_s=10, rss_before_mb=100,
                       rss_warm_mb=100, rss_peak_mb=120, lag_ms=[])
    assert within_ceiling(single, single)
    assert not within_ceiling(result, single)
    baseline = aggregate("pipecat", calls[:1], cpu_s=6.0, wall_s=10.0, rss_before_mb=50,
                         rss_warm_mb=50, rss_peak_mb=90, lag_ms=[])
    table = load_table({"patter": result, "pipecat": baseline}, "2 calls")
    assert "| CPU seconds per call | 1.50 | 6.00 | 0.25 |" in table
    assert "| dead air (turns > 3 s silent) | 1 | 0 |  |" in table


def test_repeated_runs_alternate_the_order_and_the_median_run_is_shown() -> None:
    assert round_orders(3, ["patter", "pipecat"]) == [
        ["patter", "pipecat"], ["pipecat", "patter"], ["patter", "pipecat"]]

    def run(patter_cpu_s: float) -> dict[str, LoadResult]:
        def result(bot: str, cpu_s: float) -> LoadResult:
            return aggregate(bot, [CallResult(latencies_ms=[500])], cpu_s=cpu_s, wall_s=10,
                             rss_before_mb=0, rss_warm_mb=0, rss_peak_mb=0, lag_ms=[])
        return {"patter": result("patter", patter_cpu_s), "pipecat": result("pipecat", 2.0)}

    rounds = [run(1.2), run(0.8), run(1.0)]
    assert median_round(rounds) is rounds[2]
    table = rounds_table(rounds)
    assert "| CPU seconds per call | 0.60 | 0.40 | 0.50 | 0.50 |" in table
    assert "| end of speech -> answer heard, median (ms) | 1.00 | 1.00 | 1.00 | 1.00 |" in table
