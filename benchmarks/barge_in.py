"""Barge-in: the caller talks over a long reply, Patter vs a plain Pipecat bot, in the same run.

Run: ``.venv/bin/python -P benchmarks/barge_in.py [--calls 4]``

Both bots run in this process against the same loopback fakes (answering at once) and are
called by the same SimulatedPhone; the plain bot is Pipecat's own FastAPIWebsocketTransport
with TwilioFrameSerializer (``pipecat_baseline.py``). In each call the caller asks a question,
the bot starts a long three-sentence reply, and after a varying stretch of it the caller
says "Do you have vegan dishes?". Every figure comes from the phone's timeline (what it sent,
heard and received) and from what the fake LLM was sent next:

* speech onset → ``clear``: from the first frame of the caller's speech to Twilio's ``clear``;
* bot heard over the caller: from that onset until the phone stopped playing bot audio;
* heard-position error: where the bot believed playout stood at the cut minus where it
  really stood (Patter: its mark ledger; Pipecat has none and counts all audio it sent, so
  its error is the audio Twilio dropped from its buffer on ``clear``);
* words off for the LLM: how many words the reply in the next LLM request has more or fewer
  than the caller heard (from the audio played, each sentence's words spread evenly).

A second scenario plays a 150 ms tone (a cough) over the reply: no ``clear`` should follow,
and the figure is how long the bot's audio stopped because of it. A third, Patter only (the
plain bot ignores keys), cuts the reply with a keypress: no pause comes first, so Twilio's
buffer is full at the cut and the heard position must come from the marks.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from loguru import logger

logger.remove()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GREETING  # noqa: E402
from pipecat_baseline import MEDIA_PATH, plain_pipecat_app  # noqa: E402

from patter.testing._server import LoopbackServer  # noqa: E402
from patter.testing.audio import tone  # noqa: E402
from patter.testing.harness import OPENAI_KEY, LoopbackWorld  # noqa: E402
from patter.testing.phone import SimulatedPhone  # noqa: E402
from patter.testing.scenes import (  # noqa: E402
    INTERRUPTION,
    QUESTION,
    proportional_words,
    script,
)

QUOTED_PIPECAT = {"onset_to_clear_ms": 330.0, "heard_over_ms": 320.0}
"""A plain Pipecat bot's figures as the project's design notes quote them (not measured)."""

Dial = Callable[[], Awaitable[SimulatedPhone]]
"""Places a call and returns the caller's phone, connected."""


@dataclass
class Cut:
    """One barge-in, as measured."""

    onset_to_clear_ms: float
    heard_over_ms: float
    heard_error_ms: float
    words_off: int


@dataclass
class Figures:
    """Everything measured for one bot."""

    cuts: list[Cut] = field(default_factory=list)
    noise_gaps_ms: list[float] = field(default_factory=list)
    noise_clears: int = 0
    key_errors_ms: list[float] = field(default_factory=list)


class HeardPositionLog(logging.Handler):
    """Collects Patter's own heard position at each cut (``heard_ms`` of its debug line)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.positions: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "twilio buffer cleared":
            self.positions.append(float(record.__dict__["heard_ms"]))


def assistant_words_before(request: dict[str, object]) -> int:
    """Words of the reply the LLM was given, in the request answering the interruption."""
    messages = request["messages"]
    assert isinstance(messages, list)
    for message in reversed(messages[:-1]):
        if message["role"] == "assistant" and message.get("content"):
            return len(str(message["content"]).split())
    return 0


async def reply_started(world: LoopbackWorld, phone: SimulatedPhone) -> int:
    """Ask QUESTION once the greeting is over; return the audio heard before the reply."""
    await phone.wait_for_heard(0.5, timeout=30)
    await phone.wait_until_quiet(quiet_s=0.8, timeout=30)
    before = len(phone.heard_pcm())
    asked = len(world.openai.chat_requests)
    phone.say_text(QUESTION)
    await world.openai.wait_until(lambda: len(world.openai.chat_requests) > asked, 30)
    await phone.wait_for_heard(phone.heard_voiced_s + 0.3, timeout=30)
    return before


async def barge_in(world: LoopbackWorld, phone: SimulatedPhone, after_s: float,
                   patter_positions: list[float] | None) -> Cut:
    script(world)
    before = await reply_started(world, phone)
    await phone.wait_for_heard(phone.heard_voiced_s + after_s, timeout=30)
    asked = len(world.openai.chat_requests)
    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    played_total_ms = len(phone.heard_pcm()) / 16
    played_ms = played_total_ms - before / 16
    await world.openai.wait_until(lambda: len(world.openai.chat_requests) > asked, 30)

    onset = phone.events_of("caller_audio_started")[-1].t
    clear = phone.events_of("clear_received")[-1]
    silent = min([e.t for e in phone.events_of("playout_stopped") if e.t > onset] + [clear.t])
    if patter_positions is not None:
        # Each call is a fresh stream, so Patter's positions count from its start, like the
        # phone's playout.
        error_ms = patter_positions[-1] - played_total_ms
    else:
        error_ms = clear.data["dropped_bytes"] / 8
    told = assistant_words_before(world.openai.chat_requests[-1])
    off = abs(told - proportional_words(played_ms))
    return Cut((clear.t - onset) * 1000, (silent - onset) * 1000, error_ms, off)


async def cough(world: LoopbackWorld, phone: SimulatedPhone) -> tuple[float, int]:
    """A 150 ms tone over the reply: (ms the bot's audio stopped, clears received)."""
    script(world)
    await reply_started(world, phone)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.5, timeout=30)
    clears = len(phone.received_of("clear"))
    phone.say(tone(440, 0.15, amplitude=0.6))
    await phone.wait_for_heard(phone.heard_voiced_s + 1.5, timeout=30)
    onset = phone.events_of("caller_audio_started")[-1].t
    stops = [e.t for e in phone.events_of("playout_stopped") if e.t > onset]
    starts = [e.t for e in phone.events_of("playout_started") if stops and e.t > stops[0]]
    gap_ms = (starts[0] - stops[0]) * 1000 if stops and starts else 0.0
    return gap_ms, len(phone.received_of("clear")) - clears


async def keypress_cut(world: LoopbackWorld, phone: SimulatedPhone, after_s: float,
                       patter_positions: list[float]) -> float:
    """Patter's heard-position error when a keypress cuts the reply (buffer full)."""
    script(world)
    await reply_started(world, phone)
    await phone.wait_for_heard(phone.heard_voiced_s + after_s, timeout=30)
    phone.press("1")
    await phone.wait_for_received("clear", timeout=10)
    return patter_positions[-1] - len(phone.heard_pcm()) / 16


async def measure(dial: Dial, world: LoopbackWorld, calls: int,
                  patter_positions: list[float] | None) -> Figures:
    figures = Figures()
    for index in range(calls):
        phone = await dial()
        try:
            after_s = 1.0 + 2.5 * index / max(1, calls - 1)  # cut at different words
            figures.cuts.append(await barge_in(world, phone, after_s, patter_positions))
        finally:
            await phone.close()
        phone = await dial()
        try:
            gap_ms, clears = await cough(world, phone)
            figures.noise_gaps_ms.append(gap_ms)
            figures.noise_clears += clears
        finally:
            await phone.close()
        if patter_positions is not None:
            phone = await dial()
            try:
                figures.key_errors_ms.append(
                    await keypress_cut(world, phone, after_s, patter_positions))
            finally:
                await phone.close()
    return figures


async def measure_patter(world: LoopbackWorld, calls: int) -> Figures:
    positions = HeardPositionLog()
    output_log = logging.getLogger("patter.transports.twilio_output")
    output_log.addHandler(positions)
    output_log.setLevel(logging.DEBUG)
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a restaurant host.", first_message=GREETING))

    async def dial() -> SimulatedPhone:
        call = await world.call_in()
        assert call.phone is not None, call.stream_errors
        return call.phone

    try:
        return await measure(dial, world, calls, positions.positions)
    finally:
        output_log.removeHandler(positions)
        await world.stop_serving()


async def measure_pipecat(world: LoopbackWorld, calls: int) -> Figures:
    app = plain_pipecat_app(openai_base_url=world.openai.base_url, openai_key=OPENAI_KEY,
                            greeting=GREETING)
    async with LoopbackServer(app) as server:

        async def dial() -> SimulatedPhone:
            phone = SimulatedPhone(server.ws_url + MEDIA_PATH)
            await phone.start()
            return phone

        return await measure(dial, world, calls, None)


def row(label: str, patter: list[float], pipecat: list[float],
        quoted: float | None = None) -> None:
    """Print the medians side by side, their ratio, and the quoted figure if any."""
    p, b = statistics.median(patter), statistics.median(pipecat)
    ratio = f"{p / b:8.2f}" if b else f"{'-':>8}"
    line = f"{label:44}{p:9.0f}{b:10.0f}{ratio}"
    if quoted is not None:
        line += f"   quoted Pipecat {quoted:.0f} ms, ratio {p / quoted:.2f}"
    print(line, flush=True)


async def main(calls: int) -> None:
    async with LoopbackWorld() as world:
        patter = await measure_patter(world, calls)
        pipecat = await measure_pipecat(world, calls)
    print(f"\nbarge-in, {calls} calls per bot, medians (lower is better)")
    print(f"{'':44}{'patter':>9}{'pipecat':>10}{'ratio':>8}")

    def of(figures: Figures, name: str) -> list[float]:
        return [float(getattr(cut, name)) for cut in figures.cuts]

    row("speech onset -> clear at Twilio (ms)", of(patter, "onset_to_clear_ms"),
        of(pipecat, "onset_to_clear_ms"), QUOTED_PIPECAT["onset_to_clear_ms"])
    row("bot audio heard over the caller (ms)", of(patter, "heard_over_ms"),
        of(pipecat, "heard_over_ms"), QUOTED_PIPECAT["heard_over_ms"])
    row("heard-position error at the cut (ms of audio)", of(patter, "heard_error_ms"),
        of(pipecat, "heard_error_ms"))
    row("reply words for the LLM vs heard (words off)", of(patter, "words_off"),
        of(pipecat, "words_off"))
    row("150 ms noise: bot audio stopped for (ms)", patter.noise_gaps_ms, pipecat.noise_gaps_ms)
    print(f"{'150 ms noise: clears sent':44}{patter.noise_clears:9d}{pipecat.noise_clears:10d}")
    key_errors = patter.key_errors_ms
    print(f"{'keypress cut: heard-position error (ms)':44}{statistics.median(key_errors):9.0f}"
          f"{'-':>10}   worst {max(key_errors, key=abs):.0f} ms (Patter only)")
    print("each cut (onset->clear ms, heard over ms, heard error ms, words off):")
    for name, figures in (("patter", patter), ("pipecat", pipecat)):
        print(f"  {name}: {[described(cut) for cut in figures.cuts]}")


def described(cut: Cut) -> tuple[int, int, int, int]:
    """A cut's figures, rounded for printing."""
    return (round(cut.onset_to_clear_ms), round(cut.heard_over_ms), round(cut.heard_error_ms),
            cut.words_off)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4)
    asyncio.run(main(parser.parse_args().calls))
