"""``agent(speculative_replies=True)`` end to end: the caller stops after an unfinished
sentence, which smart-turn judges unfinished (it then waits up to its 3 s silence cap), so
the LLM is asked speculatively on the transcript while the turn is still open."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from patter._events import Event
from patter._shared_models import SharedSmartTurnAnalyzer
from patter.testing.audio import synthesize_speech
from patter.testing.harness import LoopbackWorld, wait_for

UNFINISHED = "So I was thinking that"
"""What the (fake) STT hears of the caller's first words."""
UNFINISHED_SOUNDING = ("So I was thinking that", "So what I wanted to ask is",
                       "I would like to", "And the reason I am calling is")
"""Lines for the caller to say as those first words. Smart-turn's int8 arithmetic is not
identical on every CPU (x86-64 with or without VNNI, ARM; "So I was thinking that" scored
0.86, finished, on an AVX2-only AMD EPYC before Patter chose exact int8 kernels there), so
the test says the first that smart-turn judges unfinished on the machine it runs on."""
REST = "we could book a table for two."
SPECULATIVE = "For how many people?"


@functools.cache
def unfinished_sounding() -> str:
    """The first of ``UNFINISHED_SOUNDING`` that smart-turn judges unfinished on this machine."""
    analyzer = SharedSmartTurnAnalyzer()
    analyzer.set_sample_rate(8000)
    for line in UNFINISHED_SOUNDING:
        audio = np.frombuffer(synthesize_speech(line), np.int16).astype(np.float32) / 32768
        if analyzer._predict_endpoint(audio)["prediction"] == 0:
            return line
    raise AssertionError(f"smart-turn judges every one of {UNFINISHED_SOUNDING} finished here; "
                         "add a line it judges unfinished to UNFINISHED_SOUNDING")


def spoken(world: LoopbackWorld) -> list[str]:
    """Every text the agent had synthesised (the only way anything reaches the caller)."""
    return [r.json["input"] for r in world.openai.requests
            if r.path.endswith("/audio/speech") and r.json]


def last_user_message(request: dict[str, Any]) -> str:
    return [m["content"] for m in request["messages"] if m["role"] == "user"][-1]


async def call_with(world: LoopbackWorld) -> tuple[Any, list[Event]]:
    phone = world.patter()
    agent = phone.agent("You book tables.", first_message="Hello.", speculative_replies=True)
    ended: list[Event] = []
    await world.serve(phone, agent, on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.3, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    return call.phone, ended


async def test_a_confirmed_speculation_is_heard_once(world: LoopbackWorld) -> None:
    world.openai.transcripts.append(UNFINISHED)
    world.openai.reply_with(SPECULATIVE)
    phone, ended = await call_with(world)

    phone.say_text(unfinished_sounding())
    await wait_for(lambda: SPECULATIVE in spoken(world), timeout=30)
    await phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)

    assert [last_user_message(r) for r in world.openai.chat_requests] == [UNFINISHED]
    assert spoken(world).count(SPECULATIVE) == 1
    history = [(e["role"], e["text"]) for e in ended[0].history]
    assert history[-2:] == [("user", UNFINISHED), ("assistant", SPECULATIVE)]


async def test_a_caller_who_goes_on_never_hears_the_withdrawn_answer(
        world: LoopbackWorld) -> None:
    world.openai.transcripts.extend([UNFINISHED, REST])
    world.openai.reply_with(SPECULATIVE)
    world.openai.reply_with("A table for two tonight, booked.")
    phone, ended = await call_with(world)

    phone.say_text(unfinished_sounding())
    await wait_for(lambda: len(world.openai.chat_requests) == 1, timeout=30)  # speculative
    phone.say_text(REST)
    await wait_for(lambda: "A table for two tonight, booked." in spoken(world), timeout=30)
    await phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)

    whole = f"{UNFINISHED} {REST}"
    assert [last_user_message(r) for r in world.openai.chat_requests] == [UNFINISHED, whole]
    assert SPECULATIVE not in spoken(world)
    history = [(e["role"], e["text"]) for e in ended[0].history]
    assert history[-2:] == [("user", whole), ("assistant", "A table for two tonight, booked.")]
    assert all(text != SPECULATIVE for _, text in history)
