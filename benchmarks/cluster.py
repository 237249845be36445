"""Scale-out: 1 vs 3 Patter instances behind a real HAProxy on this machine, side by side.

Run: ``.venv/bin/python -P benchmarks/cluster.py [--instances 1,3] [--setups 24]
[--concurrent 2,4,8,12]``

For each instance count a fresh ``LocalCluster`` (``patter.testing.cluster``: HAProxy from
deploy/haproxy.cfg in front of N processes); this process runs the loopback fakes (Twilio,
OpenAI) and the simulated callers, and every call goes through HAProxy.

* call set-ups per second: ``--setups`` calls ring at once; each hangs up as soon as the
  caller hears the agent (ring → voice webhook → TwiML → media stream → first audio). The
  figure is the calls / the seconds until the last one was heard; also the median set-up.
* concurrent calls: for each K in ``--concurrent``, K calls at once, each hearing the
  greeting then saying one line and hearing the answer. K is held if no call failed and
  the median reply latency (last word → answer heard) stays within ``LATENCY_FACTOR`` × the
  one-call figure (the median of ``SINGLE_CALLS`` calls placed one at a time); the table
  gives the largest K held and the median at each K.

The fakes and callers share the 2 cores with the instances, so compare the ratio, not the
absolute figures, and run it with nothing else busy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

logger.remove()

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import LINES, greeting_over, transcribe_any, turn_latency  # noqa: E402
from _load_figures import ratio  # noqa: E402

from patter.testing.cluster import LocalCluster  # noqa: E402
from patter.testing.harness import LoopbackWorld, free_port  # noqa: E402

HAPROXY_CONFIG = HERE.parent / "deploy" / "haproxy.cfg"
LATENCY_FACTOR = 1.5
TIMEOUT_S = 60.0
MAX_CALLS_PER_INSTANCE = 50
SINGLE_CALLS = 3


@dataclass
class Figures:
    """One cluster size's results."""

    instances: int
    setups_per_s: float = 0.0
    setup_median_ms: float = 0.0
    setup_failed: int = 0
    reply_median_ms: dict[int, float] = field(default_factory=dict)
    failed: dict[int, int] = field(default_factory=dict)

    @property
    def concurrent_held(self) -> int:
        """The largest K whose calls all completed within the latency bound."""
        single = self.reply_median_ms.get(1)
        held = 0
        for k, median in sorted(self.reply_median_ms.items()):
            if self.failed[k] or single is None or median > single * LATENCY_FACTOR:
                break
            held = k
        return held


async def set_up(world: LoopbackWorld) -> float | None:
    """Ring once; ms from ringing to the caller hearing the agent, or None if it failed."""
    began = time.perf_counter()
    call = await world.call_in(timeout=TIMEOUT_S)
    if call.phone is None:
        return None
    try:
        await call.phone.wait_for_heard(0.05, timeout=TIMEOUT_S)
    except TimeoutError:
        return None
    heard = (time.perf_counter() - began) * 1000
    await call.phone.hang_up()
    return heard


async def one_turn(world: LoopbackWorld) -> float | None:
    """A call with one turn; its reply latency in ms, or None if it failed."""
    call = await world.call_in(timeout=TIMEOUT_S)
    if call.phone is None:
        return None
    try:
        await greeting_over(call.phone, timeout=TIMEOUT_S)
        return await turn_latency(call.phone, LINES[0], timeout=TIMEOUT_S)
    except TimeoutError:
        return None
    finally:
        await call.phone.hang_up()


async def measure(instances: int, setups: int, steps: list[int]) -> Figures:
    """Start a cluster of ``instances`` behind HAProxy and measure it."""
    figures = Figures(instances)
    async with LoopbackWorld() as world:
        world.port = free_port()
        world.twilio.route(world.public_url, f"http://127.0.0.1:{world.port}")
        world.openai.transcriber = transcribe_any

        def command(_instance_id: str, port: int) -> list[str]:
            return [sys.executable, "-P", "-m", "patter.testing._cluster_instance", str(port),
                    "60", str(MAX_CALLS_PER_INSTANCE)]

        async with LocalCluster(command, instances=instances, haproxy_config=HAPROXY_CONFIG,
                                env=world.environment(), port=world.port):
            await one_turn(world)  # warm-up: first-call costs are not the cluster's
            began = time.perf_counter()
            times = await asyncio.gather(*(set_up(world) for _ in range(setups)))
            wall = time.perf_counter() - began
            done = [t for t in times if t is not None]
            figures.setups_per_s = len(done) / wall
            figures.setup_median_ms = statistics.median(done) if done else float("inf")
            figures.setup_failed = setups - len(done)
            for k in [1, *(s for s in steps if s > 1)]:
                if k == 1:  # the yardstick: SINGLE_CALLS calls, one at a time
                    latencies = [await one_turn(world) for _ in range(SINGLE_CALLS)]
                else:
                    latencies = list(await asyncio.gather(*(one_turn(world) for _ in range(k))))
                ok = [latency for latency in latencies if latency is not None]
                figures.failed[k] = len(latencies) - len(ok)
                figures.reply_median_ms[k] = statistics.median(ok) if ok else float("inf")
                print(f"  {instances} instance(s), {k} concurrent: median reply "
                      f"{figures.reply_median_ms[k]:.0f} ms, {figures.failed[k]} failed",
                      file=sys.stderr, flush=True)
    return figures


def table(one: Figures, many: Figures) -> str:
    """The two cluster sizes side by side, with their ratio."""
    head = f"| figure | {one.instances} instance(s) | {many.instances} instances | ratio |"
    rows = [head, "|---|---|---|---|",
            f"| call set-ups per second | {one.setups_per_s:.1f} | {many.setups_per_s:.1f} "
            f"| {ratio(many.setups_per_s, one.setups_per_s)} |",
            f"| set-up, ring → first audio, median (ms) | {one.setup_median_ms:.0f} | "
            f"{many.setup_median_ms:.0f} | {ratio(many.setup_median_ms, one.setup_median_ms)} |",
            f"| set-ups failed | {one.setup_failed} | {many.setup_failed} | |",
            f"| concurrent calls held (reply ≤ {LATENCY_FACTOR}× one call, none failed) | "
            f"{one.concurrent_held} | {many.concurrent_held} | "
            f"{ratio(many.concurrent_held, one.concurrent_held)} |"]
    for k in sorted(one.reply_median_ms):
        a, b = one.reply_median_ms[k], many.reply_median_ms.get(k, float("inf"))
        rows.append(f"| reply latency median at {k} concurrent (ms) | {a:.0f} | {b:.0f} "
                    f"| {ratio(b, a)} |")
    return "\n".join(rows)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", default="1,3", help="two cluster sizes, e.g. 1,3")
    parser.add_argument("--setups", type=int, default=24)
    parser.add_argument("--concurrent", default="2,4,8,12")
    args = parser.parse_args()
    sizes = [int(n) for n in args.instances.split(",")]
    if len(sizes) != 2:
        parser.error("--instances takes two sizes, e.g. 1,3")
    steps = [int(k) for k in args.concurrent.split(",")]
    one, many = [await measure(n, args.setups, steps) for n in sizes]
    print(f"## Scale-out: {sizes[0]} vs {sizes[1]} instances behind HAProxy\n")
    print(f"{platform.machine()}, {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} cores; every call through HAProxy; "
          "fakes and callers in the measuring process.\n")
    print(table(one, many))


if __name__ == "__main__":
    asyncio.run(main())
