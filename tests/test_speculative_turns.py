"""Speculative replies: Pipecat's user aggregator with ``SpeculativeTurnStopStrategy``,
the OpenAI LLM service talking to the fake OpenAI. The turn analyzer is scripted (smart-turn's
verdict on real speech cannot be chosen), everything else is the production path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pipecat.audio.turn.base_turn_analyzer import BaseTurnAnalyzer, BaseTurnParams, EndOfTurnState
from pipecat.frames.frames import STTMetadataFrame
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.turns.speculation_gate import SpeculationState

from patter._pipecat import (
    EagerEndOfTurnCancelFrame,
    FunctionCallParams,
    InputAudioRawFrame,
    LLMContext,
    LLMContextAggregatorPair,
    LLMFullResponseEndFrame,
    LLMTextFrame,
    LLMUserAggregatorParams,
    TranscriptionFrame,
    UserTurnStrategies,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
    VADUserTurnStartStrategy,
)
from patter._speculation import SpeculativeTurnStopStrategy
from patter.testing.harness import OPENAI_KEY, LoopbackWorld
from patter.testing.pipeline import Harness, running_pipeline

FIRST_WORDS = "I would like to book a table"
REST = "for two tonight."
SILENCE = InputAudioRawFrame(audio=bytes(320), sample_rate=16000, num_channels=1)


class ScriptedTurnAnalyzer(BaseTurnAnalyzer):
    """Judges every pause unfinished until ``finished`` is set; then the next silent audio
    ends the turn, as smart-turn's silence cap does."""

    def __init__(self) -> None:
        super().__init__(sample_rate=16000)
        self.finished = False

    @property
    def speech_triggered(self) -> bool:
        return False

    @property
    def params(self) -> BaseTurnParams:
        return BaseTurnParams()

    def append_audio(self, buffer: bytes, is_speech: bool) -> EndOfTurnState:
        return self._verdict() if not is_speech else EndOfTurnState.INCOMPLETE

    async def analyze_end_of_turn(self) -> tuple[EndOfTurnState, Any]:
        return self._verdict(), None

    def clear(self) -> None:
        self.finished = False

    def _verdict(self) -> EndOfTurnState:
        return EndOfTurnState.COMPLETE if self.finished else EndOfTurnState.INCOMPLETE


@dataclass
class Turns:
    p: Harness
    llm: OpenAILLMService
    context: LLMContext
    analyzer: ScriptedTurnAnalyzer
    strategy: SpeculativeTurnStopStrategy

    async def caller_says(self, text: str) -> None:
        await self.p.send(VADUserStartedSpeakingFrame(start_secs=0.2),
                          VADUserStoppedSpeakingFrame(stop_secs=0.2),
                          TranscriptionFrame(text, "caller", "2026-01-01T00:00:00Z",
                                             finalized=True))

    async def turn_confirmed(self) -> None:
        self.analyzer.finished = True
        await self.p.send(SILENCE)

    def answers(self) -> str:
        return "".join(f.text for f in self.p.down(LLMTextFrame))

    def user_messages(self) -> list[str]:
        return [m["content"] for m in self.context.get_messages() if m.get("role") == "user"]


@pytest.fixture
async def turns(world: LoopbackWorld) -> AsyncIterator[Turns]:
    analyzer = ScriptedTurnAnalyzer()
    strategy = SpeculativeTurnStopStrategy(turn_analyzer=analyzer)
    context = LLMContext()
    pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
        user_turn_strategies=UserTurnStrategies(start=[VADUserTurnStartStrategy()],
                                                stop=[strategy])))
    llm = OpenAILLMService(api_key=OPENAI_KEY, base_url=world.openai.base_url,
                           settings=OpenAILLMService.Settings(model="gpt-4o-mini"))
    async with running_pipeline([pair.user(), llm]) as p:
        # What an STT service says first: how long its transcript may take after speech.
        await p.send(STTMetadataFrame(service_name="stt", ttfs_p99_latency=2.0))
        yield Turns(p, llm, context, analyzer, strategy)


def chat_user_text(body: dict[str, Any]) -> str:
    return [m["content"] for m in body["messages"] if m["role"] == "user"][-1]


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds, for state no frame leaving the pipeline reports
    (the fake's requests, the LLM service's gate)."""
    async with asyncio.timeout(5):
        while not predicate():
            await asyncio.sleep(0.01)


async def held(turns: Turns) -> None:
    """Wait until the speculative answer came back whole and the LLM service's gate holds it."""
    gate = turns.llm._speculation_gate
    await until(lambda: gate.state is SpeculationState.HOLDING
                and gate._buffer.has_frame(LLMFullResponseEndFrame))


async def test_a_confirmed_speculation_is_answered_once_without_a_second_request(
    world: LoopbackWorld, turns: Turns
) -> None:
    world.openai.reply_with("A table for how many?")
    await turns.caller_says(FIRST_WORDS)
    await held(turns)
    assert turns.answers() == ""  # the turn is not over yet: nothing may be heard

    await turns.turn_confirmed()
    await turns.p.wait_for(lambda: turns.p.down(LLMFullResponseEndFrame))

    assert turns.answers() == "A table for how many?"
    assert [chat_user_text(b) for b in world.openai.chat_requests] == [FIRST_WORDS]
    assert turns.user_messages() == [FIRST_WORDS]
    assert (turns.strategy.confirmed, turns.strategy.withdrawn) == (1, 0)


async def test_a_withdrawn_speculation_is_never_heard_and_the_whole_turn_is_answered(
    world: LoopbackWorld, turns: Turns
) -> None:
    world.openai.reply_with("A table for how many?")
    world.openai.reply_with("Two at eight, booked.")
    await turns.caller_says(FIRST_WORDS)
    await held(turns)

    turns.analyzer.finished = True  # the caller goes on, then ends the turn
    await turns.caller_says(REST)
    await turns.p.wait_for(lambda: turns.p.down(LLMFullResponseEndFrame))

    whole = f"{FIRST_WORDS} {REST}"
    assert turns.answers() == "Two at eight, booked."
    assert turns.p.down(EagerEndOfTurnCancelFrame)
    assert [chat_user_text(b) for b in world.openai.chat_requests] == [FIRST_WORDS, whole]
    assert turns.user_messages() == [whole]
    assert (turns.strategy.confirmed, turns.strategy.withdrawn) == (0, 1)


async def test_a_withdrawn_speculation_still_generating_is_never_heard(
    world: LoopbackWorld, turns: Turns
) -> None:
    world.openai.chat_delay_s = 0.3
    world.openai.reply_with("A table for how many?")
    world.openai.reply_with("Two at eight, booked.")
    await turns.caller_says(FIRST_WORDS)
    await until(lambda: len(world.openai.chat_requests) == 1)

    turns.analyzer.finished = True
    await turns.caller_says(REST)
    await turns.p.wait_for(lambda: turns.p.down(LLMFullResponseEndFrame))

    assert turns.answers() == "Two at eight, booked."
    assert turns.user_messages() == [f"{FIRST_WORDS} {REST}"]


async def test_a_tool_call_is_not_run_speculatively(world: LoopbackWorld, turns: Turns) -> None:
    runs: list[dict[str, Any]] = []

    async def book(params: FunctionCallParams) -> None:
        runs.append(dict(params.arguments))
        await params.result_callback({"booked": True})

    turns.llm.register_function("book", book)
    world.openai.call_tool("book", {"guests": 2})
    world.openai.call_tool("book", {"guests": 2})
    world.openai.reply_with("Booked.")
    await turns.caller_says(FIRST_WORDS)
    await turns.p.wait_for(lambda: turns.p.up(EagerEndOfTurnCancelFrame))
    assert runs == []  # the speculative inference wanted the tool: it was withdrawn

    await turns.turn_confirmed()
    await turns.p.wait_for(lambda: turns.p.down(LLMFullResponseEndFrame) and runs)

    assert runs == [{"guests": 2}]
    assert turns.user_messages() == [FIRST_WORDS]
    assert (turns.strategy.confirmed, turns.strategy.withdrawn) == (0, 1)
