"""Reply latency: the caller's last word → the agent's first audio heard, Patter vs plain Pipecat.

Run: ``.venv/bin/python -P benchmarks/reply_latency.py [--turns 6] [--vendor-latency]
[--speculative-replies]``

Both bots run in this process against the same loopback fakes (OpenAI STT, LLM and TTS
answering at once) and are called by the same SimulatedPhone. In each call the caller says
a few lines, one per turn, each after the agent's previous answer has been heard; a turn's
latency runs from the end of the caller's voiced speech (espeak-ng's trailing silence is not
counted) to the moment the phone starts playing the agent's answer. What remains is what
each framework adds: end-of-turn detection, the STT upload, the LLM and TTS round trips to
fakes that answer at once, and the audio path. ``--vendor-latency`` gives the fakes a hosted
vendor's delays (as ``load.py``); ``--speculative-replies`` runs Patter's agent with
``speculative_replies=True`` and counts the LLM requests it withdrew (never heard).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

from loguru import logger

logger.remove()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GREETING, transcribe_any, turn_latencies  # noqa: E402
from _load_figures import withdrawn_requests  # noqa: E402
from load import VENDOR_LATENCY  # noqa: E402
from pipecat_baseline import MEDIA_PATH, plain_pipecat_app  # noqa: E402

from patter.testing._server import LoopbackServer  # noqa: E402
from patter.testing.harness import OPENAI_KEY, LoopbackWorld  # noqa: E402
from patter.testing.phone import SimulatedPhone  # noqa: E402

MODEL_WAIT_MS = 2000.0
"""A longer turn end means smart-turn judged the turn unfinished and waited 3 s of silence."""


async def measure_patter(world: LoopbackWorld, turns: int, speculative: bool) -> list[float]:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a test bot.", first_message=GREETING,
                                         speculative_replies=speculative))
    call = await world.call_in()
    assert call.phone is not None, call.stream_errors
    samples = await turn_latencies(call.phone, turns)
    await call.phone.hang_up()
    await world.stop_serving()
    return samples


async def measure_pipecat(world: LoopbackWorld, turns: int) -> list[float]:
    app = plain_pipecat_app(
        openai_base_url=world.openai.base_url, openai_key=OPENAI_KEY, greeting=GREETING
    )
    async with LoopbackServer(app) as server, SimulatedPhone(server.ws_url + MEDIA_PATH) as phone:
        return await turn_latencies(phone, turns)


async def main(turns: int, vendor_latency: bool, speculative: bool) -> None:
    async with LoopbackWorld() as world:
        world.openai.transcriber = transcribe_any
        if vendor_latency:
            for name, seconds in VENDOR_LATENCY.items():
                setattr(world.openai, name, seconds)
        patter = await measure_patter(world, turns, speculative)
        patter_requests = len(world.openai.chat_requests)
        pipecat = await measure_pipecat(world, turns)
        pipecat_requests = len(world.openai.chat_requests) - patter_requests
    print(f"caller's last word -> agent audio heard, {turns} turns per bot (ms; lower is better)")
    print(f"{'':40}{'patter':>10}{'pipecat':>10}{'ratio':>10}")
    quick_p = [s for s in patter if s < MODEL_WAIT_MS]
    quick_b = [s for s in pipecat if s < MODEL_WAIT_MS]
    rows = (
        ("median, all turns", statistics.median(patter), statistics.median(pipecat)),
        ("median, turns judged ended at once", statistics.median(quick_p or [0]),
         statistics.median(quick_b or [0])),
        ("worst, turns judged ended at once", max(quick_p or [0]), max(quick_b or [0])),
    )
    for label, p, b in rows:
        print(f"{label:40}{p:10.0f}{b:10.0f}{p / b if b else 0:10.2f}")
    print(f"{'turns smart-turn judged unfinished':40}{len(patter) - len(quick_p):10}"
          f"{len(pipecat) - len(quick_b):10}   (the model then waits out its 3 s silence cap)")
    print(f"{'LLM requests (withdrawn, never heard)':40}"
          f"{f'{patter_requests} ({withdrawn_requests(patter_requests, len(patter))})':>10}"
          f"{f'{pipecat_requests} ({withdrawn_requests(pipecat_requests, len(pipecat))})':>10}")
    print(f"each turn: patter {[round(s) for s in patter]}, pipecat {[round(s) for s in pipecat]}")
    print("quoted plain Pipecat figure (design notes): ~850 ms")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--vendor-latency", action="store_true",
                        help="STT 150 ms, LLM first token 300 ms, TTS first byte 200 ms")
    parser.add_argument("--speculative-replies", action="store_true",
                        help="Patter's agent with speculative_replies=True")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.vendor_latency, args.speculative_replies))
