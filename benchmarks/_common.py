"""What several benchmark scripts share: the caller's lines and one timed turn of a call."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

from patter.testing.audio import trailing_quiet_seconds
from patter.testing.phone import SimulatedPhone

GREETING = "Hello, how can I help you today?"
LINES = (
    "I would like to book a table for two tonight.",
    "Do you have anything vegetarian on the menu?",
    "Can I bring my dog with me?",
)
"""What the caller says, one line per turn, in turn."""


@contextlib.contextmanager
def no_collector_pauses() -> Iterator[None]:
    """No cyclic garbage collection in this (measuring) process while calls are timed.

    A full collection here walks the simulated phones, the fakes and their servers: ~100 ms
    with 10 calls, the loop stalled meanwhile. The phones then echoed marks and took in
    audio ~100 ms late, and every call's outbound pacing looked 100 ms late at once: the
    bot's fault in the figures, though the bot sent on time (Patter keeps ~0.1 s buffered,
    paced by those marks, so it showed; the plain bot sends its answers ahead). The
    garbage is collected once the calls are over."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def transcribe_any(_pcm: bytes, _rate: int) -> str:
    """The fake STT's answer to every upload (the words do not change the timing)."""
    return LINES[0]


async def greeting_over(phone: SimulatedPhone, *, timeout: float = 30) -> None:
    """Wait until the agent's greeting has been heard and the line is quiet again."""
    await phone.wait_for_heard(0.5, timeout=timeout)
    await phone.wait_until_quiet(quiet_s=0.8, timeout=timeout)


async def turn_latency(phone: SimulatedPhone, line: str, *, timeout: float = 30) -> float:
    """Say ``line``; ms from its last word (espeak-ng's trailing silence not counted) to the
    first agent audio played after it. Returns once the answer is over; raises
    ``TimeoutError`` if no answer is heard within ``timeout`` seconds of the line."""
    pcm = phone.say_text(line)
    await phone.wait_said()
    last_word = phone.events_of("caller_audio_ended")[-1].t - trailing_quiet_seconds(pcm)
    heard = phone.heard_voiced_s
    await phone.wait_for_heard(heard + 0.3, timeout=timeout)
    started = [e.t for e in phone.events_of("playout_started") if e.t > last_word]
    await phone.wait_until_quiet(quiet_s=0.8, timeout=timeout)
    return (started[0] - last_word) * 1000


async def turn_latencies(phone: SimulatedPhone, turns: int) -> list[float]:
    """Let the greeting finish, then say ``turns`` lines; each turn's :func:`turn_latency`."""
    await greeting_over(phone)
    return [await turn_latency(phone, LINES[turn % len(LINES)]) for turn in range(turns)]
