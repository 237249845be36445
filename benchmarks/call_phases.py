"""Call phases: where one call's CPU goes, phase by phase, Patter vs a plain Pipecat bot.

Run: ``.venv/bin/python -P benchmarks/call_phases.py [--turns 3] [--silence 5]``

Each bot serves in a child process of its own (``load.py``'s ``BotProcess``), against the
same loopback fakes answering at once; after a warm-up call, one call goes through these
phases, and the bot process's CPU time is read at each boundary from ``/proc``:

* ``greeting``: connected until the greeting has been heard and the line is quiet;
* ``silence``: ``--silence`` seconds in which nobody speaks (Twilio still sends the
  caller's line, 50 messages a second): the floor a call costs all through;
* ``caller speaks``, ``waiting for the answer`` (the caller's last word until the answer is
  heard), ``answer plays`` (until 0.8 s of quiet), once per ``--turns`` line;
* ``hang-up``: the phone hangs up until the bot is idle again.

Per phase: its wall time, the event loop's CPU (the process's main thread) in ms per second
of the phase, and the other threads' CPU in ms (smart-turn's inference, ONNX Runtime's and
other workers; the process's total minus the main thread, so threads that have ended count).
``/proc`` counts in 10 ms ticks, read twice per boundary: a phase's other threads can come out
a tick below zero, shown as 0. One run of each bot: compare ratios, and repeat before trusting
a difference of a few per cent (docs/performance.md, "Session 10").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

logger.remove()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import greeting_over  # noqa: E402
from _load_figures import BOT_NAMES, BOTS  # noqa: E402
from load import LOAD_LINES, REPLY_TIMEOUT_S, BotProcess, cpu_seconds, prepare  # noqa: E402

from patter.testing.harness import LoopbackWorld  # noqa: E402

PHASES = ("greeting", "silence", "caller speaks", "waiting for the answer", "answer plays",
          "hang-up")


@dataclass
class PhaseCost:
    """One phase's wall time and CPU, summed over its occurrences."""

    wall_s: float = 0.0
    loop_cpu_s: float = 0.0
    other_cpu_s: float = 0.0


def loop_and_process_cpu(pid: int) -> tuple[float, float]:
    """(the main thread's, the whole process's) user + system CPU seconds so far."""
    return cpu_seconds(Path(f"/proc/{pid}/task/{pid}/stat")), cpu_seconds(Path(f"/proc/{pid}/stat"))


class PhaseClock:
    """Charges the bot's CPU since the previous boundary to the phase that just ended."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.costs = {phase: PhaseCost() for phase in PHASES}
        self._since = time.monotonic()
        self._cpu = loop_and_process_cpu(pid)

    def ended(self, phase: str) -> None:
        """``phase`` ends now."""
        now, cpu = time.monotonic(), loop_and_process_cpu(self.pid)
        cost = self.costs[phase]
        cost.wall_s += now - self._since
        cost.loop_cpu_s += cpu[0] - self._cpu[0]
        cost.other_cpu_s += (cpu[1] - cpu[0]) - (self._cpu[1] - self._cpu[0])
        self._since, self._cpu = now, cpu


async def measure(bot_name: str, turns: int, silence_s: float) -> dict[str, PhaseCost]:
    """One warm-up call, then one call through every phase; the cost of each phase."""
    async with LoopbackWorld() as world:
        prepare(world, vendor_latency=False)
        async with BotProcess(bot_name, world) as bot:
            await bot.idle()
            phone = await bot.dial()  # warm-up: what a first call loads once is not counted
            await greeting_over(phone, timeout=REPLY_TIMEOUT_S)
            await phone.close()
            await bot.idle()
            clock = PhaseClock(bot.pid)
            phone = await bot.dial()
            await greeting_over(phone, timeout=REPLY_TIMEOUT_S)
            clock.ended("greeting")
            await asyncio.sleep(silence_s)
            clock.ended("silence")
            for turn in range(turns):
                phone.say_text(LOAD_LINES[turn % len(LOAD_LINES)])
                await phone.wait_said()
                clock.ended("caller speaks")
                await phone.wait_for_heard(phone.heard_voiced_s + 0.05, timeout=REPLY_TIMEOUT_S)
                clock.ended("waiting for the answer")
                await phone.wait_until_quiet(quiet_s=0.8, timeout=REPLY_TIMEOUT_S)
                clock.ended("answer plays")
            await phone.close()
            await bot.idle()
            clock.ended("hang-up")
            return clock.costs


def table(costs: dict[str, dict[str, PhaseCost]]) -> str:
    """A markdown table: per phase and bot, wall time, event-loop ms/s and other threads' ms,
    and the ratio of the bots' CPU per second of the phase."""
    head = ["phase"]
    for bot in costs:
        name = BOT_NAMES[bot]
        head += [f"{name}: wall (s)", f"{name}: event loop (ms/s)", f"{name}: other threads (ms)"]
    lines = ["| " + " | ".join([*head, "ratio, all CPU per s"]) + " |",
             "|" + "---|" * (len(head) + 1)]
    for phase in PHASES:
        row, per_s = [phase], []
        for bot_costs in costs.values():
            cost = bot_costs[phase]
            wall = max(cost.wall_s, 1e-9)
            row += [f"{cost.wall_s:.2f}", f"{1000 * cost.loop_cpu_s / wall:.1f}",
                    f"{1000 * max(cost.other_cpu_s, 0.0):.0f}"]
            per_s.append((cost.loop_cpu_s + cost.other_cpu_s) / wall)
        row.append(f"{per_s[0] / per_s[1]:.2f}" if len(per_s) == 2 and per_s[1] > 0 else "")
        lines.append("| " + " | ".join(row) + " |")
    for bot, bot_costs in costs.items():
        loop = sum(c.loop_cpu_s for c in bot_costs.values())
        other = sum(c.other_cpu_s for c in bot_costs.values())
        lines.append(f"\n{BOT_NAMES[bot]}: the call's CPU {loop + other:.2f} s "
                     f"(event loop {loop:.2f} s, other threads {other:.2f} s)")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    costs = {bot: await measure(bot, args.turns, args.silence) for bot in BOTS}
    print(f"call phases: {args.turns} turns, {args.silence:g} s of silence, instant vendors\n")
    print(table(costs))


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--turns", type=int, default=3, help="caller's lines in the call")
    cli.add_argument("--silence", type=float, default=5.0,
                     help="seconds nobody speaks, after the greeting")
    return cli


if __name__ == "__main__":
    asyncio.run(main(parser().parse_args()))
