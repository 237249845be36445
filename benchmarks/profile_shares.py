"""Profile shares: which part of a call the CPU goes to, from py-spy profiles of one or two bots.

Run: ``.venv/bin/python -P benchmarks/profile_shares.py patter.raw [pipecat.raw]``

Each file is a py-spy profile of a bot process in raw (collapsed) format, recorded with
``--threads`` while ``load.py`` or ``call_phases.py`` ran calls through it (how:
docs/performance.md, "How to reproduce"). Each sample goes to the part of a call named by its
innermost frame that belongs to one (smart-turn, Silero, the barge-in guard, the Twilio
stream, Pipecat's frame passing...); samples of a thread waiting for work (the event loop in
``epoll``, an executor's idle worker) are left out, as py-spy's own idle detection misses
them. Prints each part's share of the busy samples, per file, side by side.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"select \(selectors\.py|_worker \(concurrent/futures/thread\.py:81\)")
"""Innermost frames of a thread that waits for work."""

PARTS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern)) for name, pattern in (
        ("smart-turn (end-of-turn model)", r"_predict_endpoint|_whisper_features|smart-turn_"),
        ("Silero VAD and its loudness", r"[Ss]ilero|VADAnalyzer|calculate_audio_volume"),
        ("barge-in guard, echo check, levels", r"BargeInGuard|EchoDetector|level_dbfs|_echo\.py"),
        ("turn-taking (aggregators, turn strategies)",
         r"Aggregator|[Tt]urn[A-Z_]\w*\.|turns/|SmartTurn|VADController|UserIdle"),
        ("vendor services and HTTP clients",
         r"STTService|TTSService|LLMService|services/|openai|httpx|httpcore|h11|anyio"),
        ("Twilio stream in (JSON, base64, mu-law)",
         r"twilio_input|_stream_messages|media_stream|base_input|websocket/fastapi|serializers/|json/|base64"),
        ("Twilio stream out (pacing, marks)",
         r"twilio_output|playout|base_output|twilio_speech|pcm_to_ulaw|resampl"),
        ("WebSocket protocol", r"websockets/|uvicorn/|starlette/|_websocket_protocol"),
        ("other interceptors", r"processors/(response_guard|disclosure|dtmf|checkpoint)"),
        ("Pipecat frame passing", r"frame_processor|base_object|task_manager|pipecat/pipeline"),
        ("asyncio (tasks, queues, socket writes)", r"asyncio/"),
    )
)
"""The parts of a call, most specific first: a frame goes to the first part it matches."""

OTHER = "unattributed (no Python frame read, or none of the above)"


def part_of(frames: list[str]) -> str | None:
    """The part of a call a sample's stack (outermost frame first) is charged to; None if idle."""
    if IDLE.search(frames[-1]):
        return None
    for frame in reversed(frames):
        for name, pattern in PARTS:
            if pattern.search(frame):
                return name
    return OTHER


def shares(profile: Path) -> tuple[Counter[str], int]:
    """Busy samples per part of a call in a py-spy raw profile, and their total."""
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        part = part_of(stack.split(";"))
        if part is not None:
            counts[part] += int(samples)
    return counts, sum(counts.values())


def table(profiles: list[Path]) -> str:
    """A markdown table: each part's share of each profile's busy samples."""
    measured = [shares(profile) for profile in profiles]
    lines = ["| part of a call | " + " | ".join(p.name for p in profiles) + " |",
             "|---" * (len(profiles) + 1) + "|"]
    for name in [*(name for name, _ in PARTS), OTHER]:
        cells = [f"{100 * counts[name] / max(total, 1):.1f} %" for counts, total in measured]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| busy samples | " + " | ".join(str(total) for _, total in measured) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("profiles", nargs="+", type=Path, help="py-spy raw profiles, one per bot")
    return cli


if __name__ == "__main__":
    print(table(parser().parse_args().profiles))
