"""Load: N concurrent simulated calls in real time, Patter vs a plain Pipecat bot, in one run.

Run: ``.venv/bin/python -P benchmarks/load.py [--calls 1,3,10] [--turns 3] [--vendor-latency]
[--speculative-replies] [--repeat 3] [--ceiling] [--soak 200] [--json results.json]``

Each bot runs alone in its own child process (``_bot_process.py``), a fresh one per bot and
per N, so that the process's CPU time and resident memory (read from ``/proc``) are the
bot's; the loopback fakes (OpenAI STT, LLM and TTS; Twilio for Patter) and the simulated
phones run in this process. Both bots use OpenAI STT/LLM/TTS through the same fakes, which
answer at once, or with ``--vendor-latency`` as a hosted vendor would (STT 150 ms, LLM first
token 300 ms, TTS first byte 200 ms).

A call: the greeting is heard, then the caller says ``--turns`` lines, each after the
previous answer was heard; calls start ``STAGGER_S`` apart and overlap for the whole run.
Per N and per bot:

* CPU per call: the bot process's CPU time over the run (until it is idle again after the
  last hang-up) / N, also as % of one core over the calls' wall time;
* memory: resident set before the first call; what one warm-up call (greeting and a turn,
  before the measured calls) leaves loaded: models, lazy imports and caches a bot loads once;
  and (peak during the calls − after the warm-up) / N, the growth per concurrent call;
* outbound pacing: for each media frame the phone received, how late it came against the
  earliest schedule seen so far in its utterance (frame arrival − audio sent before it at
  8000 bytes/s, minus that quantity's running minimum; a gap over ``UTTERANCE_GAP_S``
  starts a new utterance, whose first ``LEAD_IN_S`` of audio — the lead a bot sends ahead
  before pacing — is not scored), p50/p99 over all scored frames;
* reply latency: the caller's last word → the answer starts playing, median and worst;
* dead air: a turn whose answer started more than 3 s after the caller's last word, or never;
* LLM requests: chat completions the fake OpenAI received during the calls, and in brackets
  those beyond one per answered turn: with ``--speculative-replies`` (Patter's agent with
  ``speculative_replies=True``), speculative answers withdrawn unheard (their cost).

``--repeat K`` runs both bots K times for each N > 1, alternating which goes first (A B, B A,
...), and shows the run whose ratio of CPU seconds is the median, then every run's ratios of
CPU and reply latency: on a shared machine whose pace drifts, one pair of runs does not
settle a ratio to ±0.05 (see docs/performance.md, "Session 10").

``--ceiling`` then raises N until a bot fails one of: pacing p99 < 20 ms, no dead air, no
failed call, median reply latency within 1.2x of its single-call figure. ``--soak N`` places
N short calls one after another (each hangs up once the greeting is heard) and reports the
resident memory drift and the asyncio task, thread and file-descriptor counts before (after
one warm-up call) and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger

logger.remove()

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    LINES,
    greeting_over,
    no_collector_pauses,
    transcribe_any,
    turn_latency,
)
from _load_figures import (  # noqa: E402
    BOT_NAMES,
    BOTS,
    CallResult,
    LoadResult,
    aggregate,
    load_table,
    median_round,
    pacing_lateness_ms,
    round_orders,
    rounds_table,
    soak_table,
    within_ceiling,
)
from pipecat_baseline import MEDIA_PATH  # noqa: E402

from patter.testing.harness import OPENAI_KEY, LoopbackWorld, free_port  # noqa: E402
from patter.testing.phone import SimulatedPhone  # noqa: E402

LOAD_LINES = (LINES[0], LINES[2])
"""The lines smart-turn judges finished (it sometimes waits out LINES[1], in either bot)."""
STAGGER_S = 0.3
"""Between call starts: calls overlap, without all connecting in the same millisecond."""
DEAD_AIR_MS = 3000.0
REPLY_TIMEOUT_S = 15.0
CEILING_STEPS = (2, 4, 6, 8, 12, 16, 24, 32)
VENDOR_LATENCY = {"transcribe_delay_s": 0.15, "chat_delay_s": 0.3, "tts_delay_s": 0.2}
"""FakeOpenAI's delays for ``--vendor-latency``: STT, LLM first token, TTS first byte."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat: Path) -> float:
    """User + system CPU seconds so far from a ``/proc`` stat file: ``/proc/PID/stat`` for
    a process (all its threads, ended ones included), ``/proc/PID/task/TID/stat`` for one
    thread."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# -- the bot's process --------------------------------------------------------------------------

class BotProcess:
    """A bot served by ``_bot_process.py`` in a child process, wired to ``world``'s fakes."""

    def __init__(self, bot: str, world: LoopbackWorld, *, speculative: bool = False) -> None:
        self.bot = bot
        self.speculative = speculative
        self.world = world
        self.port = 0
        self._process: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()

    async def __aenter__(self) -> BotProcess:
        if self.bot == "patter":
            config: dict[str, Any] = {"settings": self.world.patter_settings(),
                                      "speculative_replies": self.speculative}
            self.port = self.world.port
        else:
            self.port = free_port()
            config = {"openai_base_url": self.world.openai.base_url, "openai_key": OPENAI_KEY}
        config.update(bot=self.bot, port=self.port)
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", str(HERE / "_bot_process.py"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._log)
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(config).encode() + b"\n")
        line = await asyncio.wait_for(self._process.stdout.readline(), 180)
        if line.strip() != b"ready":
            raise RuntimeError(f"{self.bot} bot did not start:\n{self.log_tail()}")
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._log.close()

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._process is not None
        return self._process.pid

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the child's stderr."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-chars:]

    def cpu_s(self) -> float:
        """User + system CPU seconds of the process (all its threads) so far."""
        return cpu_seconds(Path(f"/proc/{self.pid}/stat"))

    def _status(self, name: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
        raise KeyError(name)

    def rss_mb(self) -> float:
        """Resident set size in MB."""
        return self._status("VmRSS") / 1024

    async def idle(self, *, timeout_s: float = 30.0) -> None:
        """Wait until the process used under 2 % of a core for half a second."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            before = self.cpu_s()
            await asyncio.sleep(0.5)
            if self.cpu_s() - before < 0.01:
                return

    async def stats(self) -> dict[str, float]:
        """Resident MB, threads, open file descriptors and asyncio tasks, after a GC."""
        assert self._process is not None and self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(b"stats\n")
        reply = json.loads(await asyncio.wait_for(self._process.stdout.readline(), 30))
        return {"rss_mb": self.rss_mb(), "threads": self._status("Threads"),
                "fds": len(os.listdir(f"/proc/{self.pid}/fd")), "tasks": reply["tasks"]}

    async def dial(self) -> SimulatedPhone:
        """Place a call to the bot; returns the caller's connected phone."""
        if self.bot == "patter":
            call = await self.world.call_in(timeout=30)
            if call.phone is None:
                raise RuntimeError(f"no media stream: {call.errors}")
            return call.phone
        phone = SimulatedPhone(f"ws://127.0.0.1:{self.port}{MEDIA_PATH}", open_timeout_s=30)
        await phone.start()
        return phone


def prepare(world: LoopbackWorld, vendor_latency: bool) -> None:
    """Every upload transcribes to the first line; optionally, hosted vendors' delays."""
    world.openai.transcriber = transcribe_any
    if vendor_latency:
        for name, seconds in VENDOR_LATENCY.items():
            setattr(world.openai, name, seconds)


# -- running calls ------------------------------------------------------------------------------

async def one_call(bot: BotProcess, turns: int, delay_s: float) -> CallResult:
    """Wait ``delay_s``, call, hear the greeting, say ``turns`` lines, hang up."""
    await asyncio.sleep(delay_s)
    result = CallResult()
    try:
        phone = await bot.dial()
    except Exception as error:  # a refused or timed-out call is a figure, not a crash
        result.failed = f"{type(error).__name__}: {error}"
        return result
    try:
        await greeting_over(phone, timeout=REPLY_TIMEOUT_S)
        for turn in range(turns):
            ms = await turn_latency(phone, LOAD_LINES[turn % len(LOAD_LINES)],
                                    timeout=REPLY_TIMEOUT_S)
            result.latencies_ms.append(ms)
            result.dead_air += ms > DEAD_AIR_MS
    except TimeoutError:
        result.dead_air += 1
    finally:
        frames = [(e.t, int(e.data["bytes"])) for e in phone.events_of("media_received")]
        result.lateness_ms = pacing_lateness_ms(frames)
        await phone.close()
    return result


async def watch_lag(samples: list[float]) -> None:
    """Record this process's event-loop lag every 50 ms."""
    while True:
        start = time.monotonic()
        await asyncio.sleep(0.05)
        samples.append((time.monotonic() - start - 0.05) * 1000)


async def watch_rss(bot: BotProcess, peak: list[float]) -> None:
    """Keep ``peak[0]`` at the bot's highest resident MB seen (sampled every 0.2 s)."""
    while True:
        peak[0] = max(peak[0], bot.rss_mb())
        await asyncio.sleep(0.2)


async def run_load(bot_name: str, calls: int, turns: int, vendor_latency: bool,
                   speculative: bool = False) -> LoadResult:
    """One bot, in a fresh process, under ``calls`` concurrent calls."""
    async with LoopbackWorld() as world:
        prepare(world, vendor_latency)
        async with BotProcess(bot_name, world, speculative=speculative) as bot:
            await bot.idle()
            rss_before = bot.rss_mb()
            await one_call(bot, 1, 0)  # warm-up: what a first call loads once is not growth
            await bot.idle()
            rss_warm = bot.rss_mb()
            lag: list[float] = []
            peak = [rss_warm]
            watchers = [asyncio.create_task(watch_lag(lag)),
                        asyncio.create_task(watch_rss(bot, peak))]
            cpu_start, start = bot.cpu_s(), time.monotonic()
            requests_before = len(world.openai.chat_requests)
            with no_collector_pauses():
                results = await asyncio.gather(
                    *(one_call(bot, turns, index * STAGGER_S) for index in range(calls)))
            wall_s = time.monotonic() - start
            await bot.idle(timeout_s=10)
            cpu_s = bot.cpu_s() - cpu_start
            llm_requests = len(world.openai.chat_requests) - requests_before
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
    return aggregate(bot_name, results, cpu_s=cpu_s, wall_s=wall_s, rss_before_mb=rss_before,
                     rss_warm_mb=rss_warm, rss_peak_mb=peak[0], lag_ms=lag,
                     llm_requests=llm_requests)


async def soak_call(bot: BotProcess) -> bool:
    """A short call: hang up once the greeting is heard; False if it failed."""
    try:
        phone = await bot.dial()
    except Exception:  # counted, not fatal
        return False
    try:
        await phone.wait_for_heard(0.3, timeout=REPLY_TIMEOUT_S)
        return True
    except TimeoutError:
        return False
    finally:
        await phone.close()


async def run_soak(bot_name: str, calls: int) -> dict[str, Any]:
    """``calls`` short calls one after another; the bot's counts before and after."""
    async with LoopbackWorld() as world:
        prepare(world, vendor_latency=False)
        async with BotProcess(bot_name, world) as bot:
            await bot.idle()
            first_rss = bot.rss_mb()
            await soak_call(bot)  # warm-up: lazy imports and caches are not drift
            await bot.idle()
            before = await bot.stats()
            started = time.monotonic()
            failed = sum([not await soak_call(bot) for _ in range(calls)])
            seconds = time.monotonic() - started
            await bot.idle()
            after = await bot.stats()
    return {"bot": bot_name, "calls": calls, "failed": failed, "seconds": seconds,
            "rss_before_any_call_mb": first_rss, "before": before, "after": after}


def machine() -> dict[str, str]:
    """Where the figures were measured."""
    return {"cores": str(os.cpu_count()), "python": platform.python_version(),
            "pipecat": version("pipecat-ai"), "platform": platform.platform()}


async def main(args: argparse.Namespace) -> None:
    bots = [bot for bot in args.bots.split(",") if bot]
    unknown = set(bots) - set(BOTS)
    if unknown:
        raise SystemExit(f"--bots: unknown {sorted(unknown)}; choose from {', '.join(BOTS)}")
    counts = sorted({int(n) for n in args.calls.split(",") if n})
    if args.ceiling and 1 not in counts:
        counts.insert(0, 1)
    vendors = "vendors with latency (STT 150 ms, LLM 300 ms, TTS 200 ms)" \
        if args.vendor_latency else "instant vendors"
    speculative = ", Patter with speculative replies" if args.speculative_replies else ""
    print(f"machine: {machine()}\nload: {args.turns} turns per call, {vendors}{speculative}\n",
          flush=True)
    loads: dict[int, dict[str, LoadResult]] = {}
    rounds: dict[int, list[dict[str, LoadResult]]] = {}
    for calls in counts:
        repeats = args.repeat if calls > 1 and len(bots) == 2 else 1
        for order in round_orders(repeats, bots):
            pair = {bot: await run_load(bot, calls, args.turns, args.vendor_latency,
                                        args.speculative_replies) for bot in order}
            rounds.setdefault(calls, []).append(pair)
        loads[calls] = median_round(rounds[calls]) if repeats > 1 else rounds[calls][0]
        title = f"{calls} concurrent call(s), {vendors}"
        if repeats > 1:
            title += f"; of {repeats} runs, the one with the median ratio of CPU seconds"
        print(load_table(loads[calls], title) + "\n", flush=True)
        if repeats > 1:
            print(rounds_table(rounds[calls]) + "\n", flush=True)
    ceilings: dict[str, int] = {}
    if args.ceiling:
        for bot in bots:
            single, best = loads[1][bot], 1
            for calls in CEILING_STEPS:
                result = loads.get(calls, {}).get(bot) or await run_load(
                    bot, calls, args.turns, args.vendor_latency, args.speculative_replies)
                figures = result.figures()
                print(f"ceiling, {BOT_NAMES[bot]}, {calls} calls: pacing p99 "
                      f"{figures['jitter_p99_ms']:.1f} ms, median reply "
                      f"{figures['latency_median_ms']:.0f} ms, dead air {result.dead_air}, "
                      f"failed {len(result.failures)}", flush=True)
                if not within_ceiling(result, single):
                    break
                best = calls
            ceilings[bot] = best
        print("\nceiling (most concurrent calls with pacing p99 < 20 ms, no dead air, median "
              "reply within 1.2x of one call): "
              + ", ".join(f"{BOT_NAMES[b]} {n}" for b, n in ceilings.items()) + "\n")
    soaks = [await run_soak(bot, args.soak) for bot in bots] if args.soak else []
    if soaks:
        print(f"**{args.soak} calls one after another**\n\n{soak_table(soaks)}\n")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine(), "turns": args.turns, "vendor_latency": args.vendor_latency,
            "speculative_replies": args.speculative_replies,
            "loads": [{**asdict(r), "figures": r.figures()}
                      for pair in loads.values() for r in pair.values()],
            "rounds": {calls: [{bot: r.figures() for bot, r in pair.items()} for pair in runs]
                       for calls, runs in rounds.items()},
            "ceilings": ceilings, "soaks": soaks,
        }, indent=1, default=str))


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--calls", default="1,3,10", help="concurrent calls, comma-separated")
    cli.add_argument("--turns", type=int, default=2, help="caller's lines per call")
    cli.add_argument("--vendor-latency", action="store_true",
                     help="STT 150 ms, LLM first token 300 ms, TTS first byte 200 ms")
    cli.add_argument("--speculative-replies", action="store_true",
                     help="Patter's agent with speculative_replies=True")
    cli.add_argument("--repeat", type=int, default=1, metavar="K",
                     help="run both bots K times per N > 1, in alternating order, and show "
                          "the run with the median CPU ratio and every run's ratios")
    cli.add_argument("--ceiling", action="store_true", help="raise N until a bot fails")
    cli.add_argument("--soak", type=int, default=0, metavar="N",
                     help="then N short calls one after another")
    cli.add_argument("--bots", default=",".join(BOTS), help="patter,pipecat or either")
    cli.add_argument("--json", help="also write every figure to this JSON file")
    return cli


if __name__ == "__main__":
    asyncio.run(main(parser().parse_args()))
