"""A picture of one barge-in call per bot: caller speech, agent audio heard, marks, ``clear``.

Run: ``.venv/bin/python -P benchmarks/barge_in_timeline.py [--png results/barge_in_timeline.png]``

The call is ``barge_in.py``'s (the caller asks a question and talks over the long reply two
seconds in), placed once to Patter and once to the plain Pipecat bot, in this process; the
picture is drawn from each SimulatedPhone's timeline (needs the ``bench`` extra: matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from loguru import logger

logger.remove()

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _charts import barge_in_timeline  # noqa: E402
from _common import GREETING  # noqa: E402
from barge_in import barge_in  # noqa: E402
from pipecat_baseline import MEDIA_PATH, plain_pipecat_app  # noqa: E402

from patter.testing._server import LoopbackServer  # noqa: E402
from patter.testing.harness import OPENAI_KEY, LoopbackWorld  # noqa: E402
from patter.testing.phone import PhoneEvent, SimulatedPhone  # noqa: E402

CUT_AFTER_S = 2.0
"""Seconds of the reply heard before the caller talks over it."""


async def talk_over(world: LoopbackWorld, phone: SimulatedPhone) -> list[PhoneEvent]:
    """Run the barge-in and let the answer to it play; the phone's timeline."""
    await barge_in(world, phone, CUT_AFTER_S, None)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)
    events = list(phone.events)
    await phone.close()
    return events


async def patter_call(world: LoopbackWorld) -> list[PhoneEvent]:
    """One barge-in call to Patter."""
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a restaurant host.", first_message=GREETING))
    call = await world.call_in()
    assert call.phone is not None, call.errors
    try:
        return await talk_over(world, call.phone)
    finally:
        await world.stop_serving()


async def pipecat_call(world: LoopbackWorld) -> list[PhoneEvent]:
    """One barge-in call to the plain Pipecat bot."""
    app = plain_pipecat_app(openai_base_url=world.openai.base_url, openai_key=OPENAI_KEY,
                            greeting=GREETING)
    async with LoopbackServer(app) as server:
        phone = SimulatedPhone(server.ws_url + MEDIA_PATH)
        await phone.start()
        return await talk_over(world, phone)


async def main(png: Path) -> None:
    async with LoopbackWorld() as world:
        patter = await patter_call(world)
    async with LoopbackWorld() as world:
        pipecat = await pipecat_call(world)
    png.parent.mkdir(parents=True, exist_ok=True)
    barge_in_timeline([("patter", patter), ("pipecat", pipecat)], png)
    print(f"barge-in timeline written to {png}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", type=Path, default=HERE / "results" / "barge_in_timeline.png")
    asyncio.run(main(parser.parse_args().png))
