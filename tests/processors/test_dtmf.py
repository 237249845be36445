"""DtmfInjector: keypad presses become user messages the LLM answers, in the caller's order."""

from __future__ import annotations

import asyncio
from typing import Any

from patter._pipecat import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InputDTMFFrame,
    InterruptionFrame,
    KeypadEntry,
    LLMMessagesAppendFrame,
    TTSSpeakFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from patter.processors.dtmf import DtmfInjector, dtmf_text


def contents(frames: list[LLMMessagesAppendFrame]) -> list[str]:
    return [m["content"] for f in frames for m in f.messages]


def kinds(frames: list[Frame], *types: type[Frame]) -> list[str]:
    return [type(f).__name__ for f in frames if isinstance(f, types)]


def test_dtmf_text_is_the_format_the_spec_names() -> None:
    assert dtmf_text("1") == "[DTMF: 1]"
    assert dtmf_text("#") == "[DTMF: #]"


async def test_each_key_becomes_one_user_message_that_runs_the_llm(pipeline: Any) -> None:
    digits: list[str] = []

    async def on_digit(digit: str) -> None:
        digits.append(digit)

    async with pipeline([DtmfInjector(on_digit=on_digit)]) as p:
        await p.send(InputDTMFFrame(KeypadEntry.ONE), InputDTMFFrame(KeypadEntry.STAR),
                     InputDTMFFrame(KeypadEntry.POUND))
        await p.wait_for(lambda: len(p.down(LLMMessagesAppendFrame)) == 3)

    appended = p.down(LLMMessagesAppendFrame)
    assert contents(appended) == ["[DTMF: 1]", "[DTMF: *]", "[DTMF: #]"]
    assert all(f.run_llm for f in appended)
    assert all(m["role"] == "user" for f in appended for m in f.messages)
    assert digits == ["1", "*", "#"]
    assert p.down(InputDTMFFrame) == []


async def test_other_frames_pass_through_unchanged_and_in_order(pipeline: Any) -> None:
    first, second = TTSSpeakFrame("one"), TTSSpeakFrame("two")
    async with pipeline([DtmfInjector()]) as p:
        await p.send(first, second)
        await p.wait_for(lambda: len(p.down(TTSSpeakFrame)) == 2)
    assert p.down(TTSSpeakFrame) == [first, second]


async def test_a_key_while_the_agent_speaks_interrupts_it_first(pipeline: Any) -> None:
    async with pipeline([DtmfInjector()]) as p:
        await p.send(BotStartedSpeakingFrame(), InputDTMFFrame(KeypadEntry.TWO))
        await p.wait_for(lambda: p.down(LLMMessagesAppendFrame))
        await p.wait_for(lambda: p.up(InterruptionFrame))

    order = kinds(p.downstream.frames, InterruptionFrame, LLMMessagesAppendFrame)
    assert order == ["InterruptionFrame", "LLMMessagesAppendFrame"]


async def test_a_key_after_the_agent_stopped_speaking_interrupts_nothing(pipeline: Any) -> None:
    async with pipeline([DtmfInjector()]) as p:
        await p.send(BotStartedSpeakingFrame(), BotStoppedSpeakingFrame(),
                     InputDTMFFrame(KeypadEntry.THREE))
        await p.wait_for(lambda: p.down(LLMMessagesAppendFrame))
    assert p.down(InterruptionFrame) == []


async def test_a_key_during_a_spoken_turn_waits_until_that_turn_ends(pipeline: Any) -> None:
    digits: list[str] = []

    async def on_digit(digit: str) -> None:
        digits.append(digit)

    async with pipeline([DtmfInjector(on_digit=on_digit)]) as p:
        await p.send(UserStartedSpeakingFrame(), InputDTMFFrame(KeypadEntry.FIVE))
        await p.wait_for(lambda: p.down(UserStartedSpeakingFrame))
        await asyncio.sleep(0.2)  # the key must not overtake the caller's words
        assert p.down(LLMMessagesAppendFrame) == [] and digits == []

        await p.send(UserStoppedSpeakingFrame())
        await p.wait_for(lambda: p.down(LLMMessagesAppendFrame))

    order = kinds(p.downstream.frames, UserStoppedSpeakingFrame, LLMMessagesAppendFrame)
    assert order == ["UserStoppedSpeakingFrame", "LLMMessagesAppendFrame"]
    assert contents(p.down(LLMMessagesAppendFrame)) == ["[DTMF: 5]"]
    assert digits == ["5"]
