"""PNG pictures of the benchmark figures (``make bench``; matplotlib, the ``bench`` extra)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from _load_figures import BOT_NAMES, BOTS  # noqa: E402

if TYPE_CHECKING:
    from patter.testing.phone import PhoneEvent

COLORS = {"patter": "#2a7ab9", "pipecat": "#9a9a9a"}
LOAD_CHARTS = (
    ("cpu_pct_per_call", "CPU per call", "% of one core"),
    ("cpu_s_per_call", "CPU seconds per call", "seconds"),
    ("growth_mb_per_call", "Memory growth per concurrent call", "MB"),
    ("rss_before_mb", "Memory before any call", "MB"),
    ("jitter_p99_ms", "Outbound pacing lateness, p99", "ms"),
    ("latency_median_ms", "Caller's end of speech → answer heard, median", "ms"),
)
"""(figure key, title, unit) of each load chart."""


def load_charts(data: dict[str, Any], out_dir: Path, *, tag: str = "") -> list[Path]:
    """One grouped bar chart per load figure (N on x, a bar per bot); returns the files."""
    loads = data["loads"]
    counts = sorted({r["calls"] for r in loads})
    subtitle = "vendors with latency" if data.get("vendor_latency") else "instant vendors"
    paths = []
    for key, title, unit in LOAD_CHARTS:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        width = 0.38
        for index, bot in enumerate(BOTS):
            values = [next((_finite(r["figures"][key]) for r in loads
                            if r["bot"] == bot and r["calls"] == n), math.nan) for n in counts]
            xs = [x + (index - 0.5) * width for x in range(len(counts))]
            bars = ax.bar(xs, values, width, label=BOT_NAMES[bot], color=COLORS[bot])
            ax.bar_label(bars, fmt=_label, fontsize=8, padding=2)
        ax.set_xticks(range(len(counts)),
                      ["1 call" if n == 1 else f"{n} concurrent calls" for n in counts])
        ax.set_ylabel(unit)
        ax.set_title(f"{title} ({subtitle})", fontsize=10)
        ax.margins(y=0.15)
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        fig.tight_layout()
        path = out_dir / f"load{tag}-{key}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _label(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.nan


def _spans(events: Sequence[PhoneEvent], start: str, stop: str, end_t: float
           ) -> list[tuple[float, float]]:
    """(start, duration) of each interval opened by ``start`` and closed by ``stop``."""
    spans, opened = [], None
    for event in events:
        if event.kind == start and opened is None:
            opened = event.t
        elif event.kind == stop and opened is not None:
            spans.append((opened, event.t - opened))
            opened = None
    if opened is not None:
        spans.append((opened, end_t - opened))
    return spans


def barge_in_timeline(calls: Sequence[tuple[str, Sequence[PhoneEvent]]], path: Path) -> None:
    """One call per bot around the caller's barge-in: the caller's speech, the agent audio
    heard, the marks echoed and Twilio's ``clear``; time 0 is the caller's speech onset."""
    fig, axes = plt.subplots(len(calls), 1, figsize=(9, 1.9 * len(calls) + 1.0), sharex=True,
                             squeeze=False)
    for ax, (bot, events) in zip(axes[:, 0], calls, strict=True):
        onset = [e.t for e in events if e.kind == "caller_audio_started"][-1]
        end_t = events[-1].t
        lanes = (("caller speaks", "caller_audio_started", "caller_audio_ended", "#e08a2c"),
                 ("agent heard", "playout_started", "playout_stopped", COLORS[bot]))
        for lane, (label, start, stop, color) in enumerate(lanes):
            spans = [(s - onset, d) for s, d in _spans(events, start, stop, end_t)]
            ax.broken_barh(spans, (lane * 10 + 2, 6), color=color, label=label)
        marks = [e.t - onset for e in events if e.kind == "mark_echoed"]
        ax.plot(marks, [19] * len(marks), "|", color="black", markersize=6, label="mark echoed")
        for clear in (e.t - onset for e in events if e.kind == "clear_received"):
            ax.axvline(clear, color="#c0392b", linewidth=1.5)
            ax.annotate(f"clear +{clear * 1000:.0f} ms", (clear, 21), fontsize=8,
                        color="#c0392b", xytext=(4, 0), textcoords="offset points")
        stops = [e.t - onset for e in events if e.kind == "playout_stopped" and e.t > onset]
        if stops:
            ax.annotate(f"heard over the caller: {stops[0] * 1000:.0f} ms", (stops[0], 10),
                        fontsize=8, xytext=(4, 0), textcoords="offset points")
        ax.axvline(0, color="black", linestyle=":", linewidth=1)
        ax.set_yticks([5, 15], ["caller", "agent\nheard"])
        ax.set_ylim(0, 24)
        ax.set_title(BOT_NAMES[bot], fontsize=10, loc="left")
        ax.spines[["top", "right"]].set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="lower center", ncols=3)
    axes[-1, 0].set_xlim(-2.5, 4.0)
    axes[-1, 0].set_xlabel("seconds from the caller's speech onset (dotted line)")
    fig.suptitle("Barge-in: the caller talks over the agent's reply", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
