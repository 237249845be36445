"""The figures of ``load.py``: pooling what callers and the bot process measured, the ceiling
test and the Markdown tables (no I/O here, so a quick test can check them)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

BOTS = ("patter", "pipecat")
BOT_NAMES = {"patter": "Patter", "pipecat": "plain Pipecat"}
UTTERANCE_GAP_S = 0.5
LEAD_IN_S = 0.5
"""Audio at the start of an utterance that pacing does not score: bots send a lead ahead
(Patter ~240 ms at once, then paces until ~100 ms is buffered)."""
BYTES_PER_S = 8000  # mu-law at 8 kHz
CEILING_JITTER_MS = 20.0
CEILING_LATENCY_FACTOR = 1.2


# -- figures ------------------------------------------------------------------------------------

def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def pacing_lateness_ms(frames: Sequence[tuple[float, int]]) -> list[float]:
    """Per received media frame ``(arrival time s, bytes)``: ms behind the earliest schedule
    seen so far in its utterance (see the module docstring)."""
    lateness: list[float] = []
    last_t = -math.inf
    sent = 0
    earliest = math.inf
    for t, size in frames:
        if t - last_t > UTTERANCE_GAP_S:
            sent, earliest = 0, math.inf
        if sent >= LEAD_IN_S * BYTES_PER_S:
            offset = t - sent / BYTES_PER_S
            earliest = min(earliest, offset)
            lateness.append((offset - earliest) * 1000)
        sent += size
        last_t = t
    return lateness


@dataclass
class CallResult:
    """What one simulated caller measured."""

    latencies_ms: list[float] = field(default_factory=list)
    dead_air: int = 0
    lateness_ms: list[float] = field(default_factory=list)
    failed: str = ""


@dataclass
class LoadResult:
    """One bot under N concurrent calls."""

    bot: str
    calls: int
    cpu_s: float
    wall_s: float
    rss_before_mb: float
    """Resident MB of the started bot, idle, before any call."""
    rss_warm_mb: float
    """Resident MB once one warm-up call is over: what a bot loads on its first call
    (models, lazy imports, caches) is in, so the calls' growth is their own."""
    rss_peak_mb: float
    latencies_ms: list[float]
    lateness_ms: list[float]
    dead_air: int
    failures: list[str]
    lag_p99_ms: float
    """This process's own event-loop lag: high values mean the phones' clocks are unreliable."""
    llm_requests: int = 0
    """Chat completion requests the fake OpenAI received from this bot during the calls."""

    @property
    def withdrawn_llm_requests(self) -> int:
        """LLM requests beyond one per answered turn (``withdrawn_requests``)."""
        return withdrawn_requests(self.llm_requests, len(self.latencies_ms))

    @property
    def cpu_pct_per_call(self) -> float:
        """CPU over the calls' wall time, per call, in % of one core."""
        return self.cpu_s / self.wall_s / self.calls * 100 if self.wall_s else 0.0

    @property
    def cpu_s_per_call(self) -> float:
        """CPU seconds of the run per call."""
        return self.cpu_s / self.calls

    @property
    def growth_mb_per_call(self) -> float:
        """(Peak resident MB during the calls − after the warm-up call) / calls."""
        return (self.rss_peak_mb - self.rss_warm_mb) / self.calls

    @property
    def first_call_mb(self) -> float:
        """Resident MB the warm-up call left behind: loaded once, on a bot's first call."""
        return self.rss_warm_mb - self.rss_before_mb

    @property
    def latency_median_ms(self) -> float:
        """Median reply latency of all turns (inf if none was answered)."""
        return statistics.median(self.latencies_ms) if self.latencies_ms else math.inf

    @property
    def latency_worst_ms(self) -> float:
        """Worst reply latency of all turns (inf if none was answered)."""
        return max(self.latencies_ms, default=math.inf)

    def figures(self) -> dict[str, float]:
        """The reported figures by name (also what ``--json`` and the charts use)."""
        return {
            "cpu_pct_per_call": self.cpu_pct_per_call,
            "cpu_s_per_call": self.cpu_s_per_call,
            "growth_mb_per_call": self.growth_mb_per_call,
            "rss_before_mb": self.rss_before_mb,
            "first_call_mb": self.first_call_mb,
            "jitter_p50_ms": percentile(self.lateness_ms, 50),
            "jitter_p99_ms": percentile(self.lateness_ms, 99),
            "latency_median_ms": self.latency_median_ms,
            "latency_worst_ms": self.latency_worst_ms,
            "dead_air": float(self.dead_air),
            "failed_calls": float(len(self.failures)),
            "lag_p99_ms": self.lag_p99_ms,
            "llm_requests": float(self.llm_requests),
            "withdrawn_llm_requests": float(self.withdrawn_llm_requests),
        }


def withdrawn_requests(llm_requests: int, answered_turns: int) -> int:
    """LLM requests beyond one per answered turn: speculative answers withdrawn unheard
    (the benchmarks' calls use no tools, so an answered turn costs one request)."""
    return max(0, llm_requests - answered_turns)


def aggregate(bot: str, calls: Sequence[CallResult], *, cpu_s: float, wall_s: float,
              rss_before_mb: float, rss_warm_mb: float, rss_peak_mb: float, lag_ms: Sequence[float],
              llm_requests: int = 0) -> LoadResult:
    """Pool the callers' measurements with the bot process's."""
    return LoadResult(
        bot=bot, calls=len(calls), cpu_s=cpu_s, wall_s=wall_s, rss_before_mb=rss_before_mb,
        rss_warm_mb=rss_warm_mb, rss_peak_mb=rss_peak_mb,
        latencies_ms=[ms for call in calls for ms in call.latencies_ms],
        lateness_ms=[ms for call in calls for ms in call.lateness_ms],
        dead_air=sum(call.dead_air for call in calls),
        failures=[call.failed for call in calls if call.failed],
        lag_p99_ms=percentile(lag_ms, 99),
        llm_requests=llm_requests,
    )


def within_ceiling(result: LoadResult, single: LoadResult) -> bool:
    """The ceiling's criteria (see the module docstring)."""
    figures = result.figures()
    return (figures["jitter_p99_ms"] < CEILING_JITTER_MS and not result.dead_air
            and not result.failures
            and result.latency_median_ms <= CEILING_LATENCY_FACTOR * single.latency_median_ms)


def round_orders(rounds: int, bots: Sequence[str]) -> list[list[str]]:
    """The bots' order in each of ``rounds`` repeated runs: alternating (A B, B A, A B, ...),
    so that a machine slowing or speeding up through the rounds favours neither bot."""
    return [list(bots) if index % 2 == 0 else list(reversed(bots)) for index in range(rounds)]


def pair_ratio(pair: dict[str, LoadResult], key: str) -> float:
    """Patter's figure ``key`` over the plain Pipecat bot's, in one run of both."""
    return pair["patter"].figures()[key] / pair["pipecat"].figures()[key]


def median_round(rounds: Sequence[dict[str, LoadResult]], key: str = "cpu_s_per_call"
                 ) -> dict[str, LoadResult]:
    """Of repeated runs of both bots, the one whose Patter / plain Pipecat ratio of ``key``
    is the median (the lower middle one for an even count): a real run, not a blend."""
    ordered = sorted(rounds, key=lambda pair: pair_ratio(pair, key))
    return ordered[(len(ordered) - 1) // 2]


# -- reporting ----------------------------------------------------------------------------------

ROWS = (
    ("CPU per call (% of a core)", "cpu_pct_per_call", "{:.1f}"),
    ("CPU seconds per call", "cpu_s_per_call", "{:.2f}"),
    ("memory growth per concurrent call (MB)", "growth_mb_per_call", "{:.1f}"),
    ("memory before any call (MB)", "rss_before_mb", "{:.0f}"),
    ("memory the first call loads, once (MB)", "first_call_mb", "{:.0f}"),
    ("outbound pacing lateness p50 (ms)", "jitter_p50_ms", "{:.1f}"),
    ("outbound pacing lateness p99 (ms)", "jitter_p99_ms", "{:.1f}"),
    ("end of speech -> answer heard, median (ms)", "latency_median_ms", "{:.0f}"),
    ("end of speech -> answer heard, worst (ms)", "latency_worst_ms", "{:.0f}"),
    ("dead air (turns > 3 s silent)", "dead_air", "{:.0f}"),
    ("failed calls", "failed_calls", "{:.0f}"),
    ("LLM requests (withdrawn, never heard)", "llm_requests", "{:.0f}"),
    ("measuring side's loop lag p99 (ms)", "lag_p99_ms", "{:.1f}"),
)
RATIO_ROWS = 8
"""The first rows are compared as Patter / plain Pipecat; counts and lag are not."""


def ratio(patter: float, pipecat: float) -> str:
    """``patter / pipecat`` to two places, or a dash."""
    if not pipecat or math.isinf(patter) or math.isinf(pipecat):
        return "-"
    return f"{patter / pipecat:.2f}"


def load_table(pair: dict[str, LoadResult], title: str) -> str:
    """A Markdown table of one N: Patter, plain Pipecat and their ratio side by side."""
    bots = [bot for bot in BOTS if bot in pair]
    lines = [f"**{title}**", "", "| | " + " | ".join(BOT_NAMES[b] for b in bots)
             + (" | ratio |" if len(bots) == 2 else " |"),
             "|---" * (len(bots) + 1 + (len(bots) == 2)) + "|"]
    for index, (label, key, fmt) in enumerate(ROWS):
        values = [pair[bot].figures()[key] for bot in bots]
        cells = [fmt.format(v) for v in values]
        if key == "llm_requests":
            cells = [f"{cell} ({pair[bot].withdrawn_llm_requests})"
                     for cell, bot in zip(cells, bots, strict=True)]
        if len(bots) == 2:
            cells.append(ratio(*values) if index < RATIO_ROWS else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def soak_table(soaks: list[dict[str, Any]]) -> str:
    """A Markdown table of the soak runs, one column per bot."""
    lines = ["| | " + " | ".join(BOT_NAMES[s["bot"]] for s in soaks) + " |",
             "|---" * (len(soaks) + 1) + "|"]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(s) for s in soaks) + " |")

    row("calls (failed)", lambda s: f"{s['calls']} ({s['failed']})")
    row("memory drift (MB)", lambda s: f"{s['after']['rss_mb'] - s['before']['rss_mb']:+.1f}")
    row("memory before any call / after warm-up / after (MB)",
        lambda s: f"{s['rss_before_any_call_mb']:.0f} / {s['before']['rss_mb']:.0f} / "
                  f"{s['after']['rss_mb']:.0f}")
    for name in ("tasks", "threads", "fds"):
        row(f"{name} before -> after", lambda s, n=name: f"{s['before'][n]} -> {s['after'][n]}")
    row("seconds", lambda s: f"{s['seconds']:.0f}")
    return "\n".join(lines)


COST_ROWS = tuple((label, key) for label, key, _ in ROWS
                  if key in ("cpu_pct_per_call", "cpu_s_per_call", "latency_median_ms"))
"""The ``ROWS`` whose ratio ``rounds_table`` shows for every repeated run."""


def rounds_table(rounds: Sequence[dict[str, LoadResult]]) -> str:
    """Patter / plain Pipecat ratios of the cost rows in each repeated run, and their median."""
    lines = ["| ratio, Patter / plain Pipecat | " + " | ".join(
                 f"run {index + 1}" for index in range(len(rounds))) + " | median |",
             "|---" * (len(rounds) + 2) + "|"]
    for label, key in COST_ROWS:
        ratios = [pair_ratio(pair, key) for pair in rounds]
        lines.append(f"| {label} | " + " | ".join(f"{r:.2f}" for r in ratios)
                     + f" | {statistics.median(ratios):.2f} |")
    return "\n".join(lines)
