"""Vendor faults: the caller's silence after speaking, and whether the next line is answered,
Patter vs plain Pipecat.

Run: ``.venv/bin/python -P benchmarks/faults.py [--runs 3] [--wait 10]``

For each fault of issue 15's table, each bot gets its own loopback world (fake OpenAI STT,
LLM and TTS) and ``--runs`` calls from the same SimulatedPhone. In each call the greeting is
heard, the fault is queued (three times, so that it outlasts the SDKs' own retries), the
caller says a line, and the silence runs from its last word to the first agent audio heard
after it (an apology counts: the caller hears the agent). With nothing heard within
``--wait`` seconds the turn is "none". Then the faults are cleared and the caller says a
second line: "next line answered" says in how many calls the agent was heard again (a call
that went deaf, or is still stuck on a hung request, answers no more). The two bots run side
by side for each fault, on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

logger.remove()
logging.getLogger().addHandler(logging.NullHandler())  # the bots' vendor errors are expected

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GREETING, LINES, greeting_over, transcribe_any, turn_latency  # noqa: E402
from pipecat_baseline import MEDIA_PATH, plain_pipecat_app  # noqa: E402

from patter.testing import Fault  # noqa: E402
from patter.testing._server import LoopbackServer  # noqa: E402
from patter.testing.harness import OPENAI_KEY, LoopbackWorld  # noqa: E402
from patter.testing.phone import SimulatedPhone  # noqa: E402

FAULTS: dict[str, tuple[str, Fault] | None] = {
    "none (for comparison)": None,
    "LLM answers 500": ("chat", Fault.http(500)),
    "LLM accepts, never answers": ("chat", Fault.hang()),
    "LLM stream cut after the first token": ("chat", Fault.cut()),
    "TTS answers 500": ("speech", Fault.http(500)),
    "STT answers 500": ("transcription", Fault.http(500)),
}
"""Row name → (the fake OpenAI's request kind, the fault queued for it), or no fault."""
FAULT_TIMES = 3
"""Each fault is queued this often: it outlasts the OpenAI SDK's default two retries."""


@dataclass
class Outcome:
    """One bot's calls under one fault."""

    silences_s: list[float | None] = field(default_factory=list)
    next_answered: int = 0

    def heard(self) -> list[float]:
        return [s for s in self.silences_s if s is not None]

    def cell(self) -> str:
        """``median (worst)`` of the silences heard, with the calls that heard nothing."""
        heard, none = self.heard(), self.silences_s.count(None)
        text = f"{statistics.median(heard):.2f} ({max(heard):.2f})" if heard else "none"
        return text + (f", {none} none" if heard and none else "")


async def faulted_call(phone: SimulatedPhone, world: LoopbackWorld,
                       fault: tuple[str, Fault] | None, outcome: Outcome, wait_s: float) -> None:
    """The greeting, a line said under ``fault``, then a line after it is cleared."""
    await greeting_over(phone)
    if fault is not None:
        world.openai.faults.add(*fault, times=FAULT_TIMES)
    try:
        outcome.silences_s.append(await turn_latency(phone, LINES[0], timeout=wait_s) / 1000)
    except TimeoutError:
        outcome.silences_s.append(None)
    world.openai.faults.clear()
    try:
        await turn_latency(phone, LINES[1], timeout=wait_s)
        outcome.next_answered += 1
    except TimeoutError:
        pass
    await phone.hang_up()


async def patter_outcome(fault: tuple[str, Fault] | None, runs: int, wait_s: float) -> Outcome:
    outcome = Outcome()
    async with LoopbackWorld() as world:
        world.openai.transcriber = transcribe_any
        phone = world.patter()
        await world.serve(phone, phone.agent("You are a test bot.", first_message=GREETING))
        for _ in range(runs):
            call = await world.call_in()
            assert call.phone is not None, call.stream_errors
            await faulted_call(call.phone, world, fault, outcome, wait_s)
        await world.stop_serving()
    return outcome


async def pipecat_outcome(fault: tuple[str, Fault] | None, runs: int, wait_s: float) -> Outcome:
    outcome = Outcome()
    async with LoopbackWorld() as world:
        world.openai.transcriber = transcribe_any
        app = plain_pipecat_app(
            openai_base_url=world.openai.base_url, openai_key=OPENAI_KEY, greeting=GREETING
        )
        async with LoopbackServer(app) as server:
            for _ in range(runs):
                async with SimulatedPhone(server.ws_url + MEDIA_PATH) as phone:
                    await faulted_call(phone, world, fault, outcome, wait_s)
    return outcome


async def main(runs: int, wait_s: float) -> None:
    print(f"caller's last word -> first agent audio heard, s: median (worst) over {runs} calls;"
          f" 'none' = nothing within {wait_s:.0f} s")
    print(f"{'fault during the caller turn':38}{'patter':>20}{'pipecat':>20}{'ratio':>8}"
          f"{'next line answered':>22}")
    for name, fault in FAULTS.items():
        patter, pipecat = await asyncio.gather(
            patter_outcome(fault, runs, wait_s), pipecat_outcome(fault, runs, wait_s)
        )
        answered = f"{patter.next_answered}/{runs} vs {pipecat.next_answered}/{runs}"
        both = patter.heard() and pipecat.heard()
        ratio = (f"{statistics.median(patter.heard()) / statistics.median(pipecat.heard()):.2f}"
                 if both else "-")
        print(f"{name:38}{patter.cell():>20}{pipecat.cell():>20}{ratio:>8}{answered:>22}",
              flush=True)
    print("ratio: Patter's median over plain Pipecat's, where both were heard ('-' otherwise);"
          " 'none' is dead air, the caller hangs up")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--wait", type=float, default=10.0, help="seconds of silence to wait")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.runs, arguments.wait))
