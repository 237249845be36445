"""CallControl: transfer_call and end_call, run by a real LLM service against the fake OpenAI."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from patter._pipecat import (
    Frame,
    FrameDirection,
    FrameProcessor,
    InterruptionFrame,
    LLMContext,
    LLMContextAggregatorPair,
    LLMMessagesAppendFrame,
    ToolsSchema,
)
from patter._vendors import VendorKeys, make_llm
from patter.processors.call_control import CallControl
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.testing.fake_openai import FakeOpenAI, message_text
from patter.testing.harness import wait_for

KEY = "sk-test-call-control"
BILLING = "+15550001111"


class Playout(FrameProcessor):
    """Stands in for the phone: holds checkpoints until the test says the audio was heard.

    Like Patter's output, an interruption releases them at once (nothing before them will
    be heard any more).
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[PlayoutCheckpointFrame] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, PlayoutCheckpointFrame):
            self.held.append(frame)
            return
        await self.push_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            await self.heard()

    async def heard(self) -> None:
        while self.held:
            await self.push_frame(self.held.pop(0))


class Actions:
    """Records what CallControl asked the call to do."""

    def __init__(self) -> None:
        self.transfers: list[tuple[str, str]] = []
        self.hang_ups = 0

    async def transfer(self, number: str, reason: str) -> None:
        self.transfers.append((number, reason))

    async def end_call(self) -> None:
        self.hang_ups += 1


@pytest.fixture
async def openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


def build(openai: FakeOpenAI, actions: Actions, playout: Playout) -> tuple[CallControl, list[Any]]:
    keys = VendorKeys(openai_key=KEY, deepgram_key=None, elevenlabs_key=None,
                      openai_base_url=openai.base_url, deepgram_base_url=None,
                      elevenlabs_base_url=None)
    control = CallControl(allowlist={BILLING}, on_transfer=actions.transfer,
                          on_end_call=actions.end_call)
    llm = make_llm(None, "gpt-4o-mini", "You are a receptionist.", keys)
    control.register(llm)
    context = LLMContext(tools=ToolsSchema(standard_tools=CallControl.schemas()))
    pair = LLMContextAggregatorPair(context)
    return control, [pair.user(), llm, playout, PlayoutCheckpointProbe(), pair.assistant()]


def user_says(text: str) -> LLMMessagesAppendFrame:
    return LLMMessagesAppendFrame(messages=[{"role": "user", "content": text}], run_llm=True)


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [message_text(m) for m in request["messages"] if m["role"] == "tool"]


def test_both_tools_are_described_for_the_llm() -> None:
    transfer, end = CallControl.schemas()
    assert transfer.name == "transfer_call" and transfer.required == ["phone_number"]
    assert set(transfer.properties) == {"phone_number", "reason"}
    assert end.name == "end_call" and end.required == []


async def test_transfer_waits_until_the_last_sentence_was_heard(
        pipeline: Any, openai: FakeOpenAI) -> None:
    openai.call_tool("transfer_call", {"phone_number": BILLING, "reason": "billing"},
                     say="Transferring you now.")
    actions, playout = Actions(), Playout()
    _, processors = build(openai, actions, playout)
    async with pipeline(processors) as p:
        await p.send(user_says("Billing, please."))
        await wait_for(lambda: bool(playout.held))
        await asyncio.sleep(0.2)  # not before the caller heard "Transferring you now."
        assert actions.transfers == []
        await playout.heard()
        await wait_for(lambda: bool(actions.transfers))
    assert actions.transfers == [(BILLING, "billing")]
    assert len(openai.chat_requests) == 1  # the LLM is not asked to talk over the transfer


async def test_a_number_not_allowed_is_refused_with_a_tool_error_the_llm_reads(
        pipeline: Any, openai: FakeOpenAI) -> None:
    openai.call_tool("transfer_call", {"phone_number": "555-0199"})
    openai.call_tool("transfer_call", {"phone_number": "+19005550199"})
    openai.reply_with("Sorry, I cannot transfer you there.")
    actions, playout = Actions(), Playout()
    _, processors = build(openai, actions, playout)
    async with pipeline(processors) as p:
        await p.send(user_says("Transfer me to +19005550199, it's an emergency."))
        await wait_for(lambda: len(openai.chat_requests) == 3)

    assert "E.164" in tool_messages(openai.chat_requests[1])[-1]
    assert "transfer refused" in tool_messages(openai.chat_requests[2])[-1]
    assert actions.transfers == [] and playout.held == []


async def test_end_call_hangs_up_once_the_goodbye_was_heard(
        pipeline: Any, openai: FakeOpenAI) -> None:
    openai.call_tool("end_call", {"reason": "done"}, say="Goodbye!")
    actions, playout = Actions(), Playout()
    _, processors = build(openai, actions, playout)
    async with pipeline(processors) as p:
        await p.send(user_says("That's all, thanks."))
        await wait_for(lambda: bool(playout.held))
        assert actions.hang_ups == 0
        await playout.heard()
        await wait_for(lambda: actions.hang_ups == 1)


async def test_a_barge_in_during_the_goodbye_hangs_up_at_once_and_only_once(
        pipeline: Any, openai: FakeOpenAI) -> None:
    openai.call_tool("end_call", say="Goodbye!")
    openai.call_tool("end_call", say="Goodbye then!")
    actions, playout = Actions(), Playout()
    control, processors = build(openai, actions, playout)
    async with pipeline(processors) as p:
        await p.send(user_says("That's all."))
        await wait_for(lambda: bool(playout.held))
        await p.send(InterruptionFrame())  # the caller talks over the goodbye
        await wait_for(lambda: actions.hang_ups == 1)
        await p.send(user_says("Bye!"))
        await wait_for(lambda: len(openai.chat_requests) == 3)  # the refusal is read back
    assert actions.hang_ups == 1 and control.acting
    assert "already being transferred or ended" in tool_messages(openai.chat_requests[2])[-1]
