"""TurnRecorder on its own: which wordless caller turns are answered, and what the LLM gets."""

from __future__ import annotations

from typing import Any

from patter._callbacks import CallbackQueue, Callbacks
from patter._events import Event, History
from patter._pipecat import (
    DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT,
    AssistantTurnStoppedMessage,
    LLMContext,
    LLMMessagesAppendFrame,
    UserTurnStoppedMessage,
)
from patter._turns import TurnRecorder

NOTE = {"role": "developer", "content": DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT}


class Recorded:
    """A TurnRecorder, fed the way the call's aggregators feed it, and what it queued."""

    def __init__(self) -> None:
        self.queued: list[Any] = []
        self.ending = False
        self.history = History()
        self.context = LLMContext()

        async def queue(*frames: Any) -> None:
            self.queued.extend(frames)

        self.turns = TurnRecorder(
            context=self.context, history=self.history, speaking=lambda: False,
            callbacks=Callbacks(), deliveries=CallbackQueue(),
            event=lambda **fields: Event(**fields), queue=queue,
            ending=lambda: self.ending,
        )

    async def caller_says(self, text: str) -> None:
        """A caller turn ends: the user aggregator writes its words (if any) to the context,
        runs the LLM, then reports the turn."""
        if text:
            self.context.add_message({"role": "user", "content": text})
        await self.turns.on_user_turn_stopped(None, None, UserTurnStoppedMessage(text, ""))

    async def caller_presses(self, digit: str) -> None:
        """The keypad injector reports the key, then its message reaches the context."""
        await self.turns.on_digit(digit)
        self.context.add_message({"role": "user", "content": f"[DTMF: {digit}]"})

    async def agent_turn(self, text: str, *, cut_after: str | None = None) -> None:
        """The agent speaks ``text``; the caller cuts it once ``cut_after`` was heard."""
        await self.turns.on_assistant_turn_started(None)
        if cut_after is not None:
            await self.turns.on_interrupted(cut_after)
        await self.turns.on_assistant_turn_stopped(
            None, AssistantTurnStoppedMessage(text, cut_after is not None, ""))

    def notes_queued(self) -> int:
        return sum(1 for f in self.queued if isinstance(f, LLMMessagesAppendFrame)
                   and f.messages == [NOTE] and f.run_llm)


async def test_a_wordless_turn_after_a_cut_answer_runs_the_llm_once_with_the_note() -> None:
    rec = Recorded()
    await rec.caller_says("What time do you open?")
    await rec.agent_turn("We open at five", cut_after="We open")
    assert rec.turns.reply_owed

    await rec.caller_says("")
    await rec.caller_says("")  # a second one in a row: steady noise, not answered again
    assert rec.notes_queued() == 1
    assert [(e["role"], e["text"]) for e in rec.history.snapshot()] == [
        ("user", "What time do you open?"), ("assistant", "We open")]


async def test_a_wordless_turn_after_a_full_answer_is_left_alone() -> None:
    rec = Recorded()
    await rec.caller_says("What time do you open?")
    await rec.agent_turn("We open at five.")
    await rec.caller_says("")
    assert not rec.turns.reply_owed and rec.notes_queued() == 0


async def test_an_answer_counts_for_the_words_before_it_whenever_their_event_comes() -> None:
    rec = Recorded()
    rec.context.add_message({"role": "user", "content": "What time do you open?"})
    await rec.agent_turn("We open at five.")  # the answer began before the turn's event ...
    await rec.turns.on_user_turn_stopped(  # ... which the aggregator's task delivers late
        None, None, UserTurnStoppedMessage("What time do you open?", ""))
    assert not rec.turns.reply_owed


async def test_an_agent_turn_that_began_before_the_caller_spoke_does_not_answer_them() -> None:
    rec = Recorded()
    await rec.turns.on_assistant_turn_started(None)  # the first message is playing ...
    await rec.caller_says("Hello?")  # ... the caller speaks (held during the disclosure)
    await rec.turns.on_assistant_turn_stopped(
        None, AssistantTurnStoppedMessage("Good evening!", False, ""))
    assert rec.turns.reply_owed


async def test_no_wordless_turn_is_answered_once_the_call_is_ending() -> None:
    rec = Recorded()
    await rec.caller_says("Transfer me please.")
    rec.ending = True
    await rec.caller_says("")
    assert rec.notes_queued() == 0


async def test_a_key_is_a_caller_turn_owed_an_answer() -> None:
    rec = Recorded()
    await rec.caller_presses("5")
    assert rec.turns.reply_owed
    await rec.caller_says("")
    assert rec.notes_queued() == 1
