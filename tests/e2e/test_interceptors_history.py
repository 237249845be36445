"""Conversation history and callbacks, end to end: one ordered history, shared safely."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from patter._events import Event
from patter.testing.harness import LoopbackWorld, wait_for

CALLER_SAYS = "When is my appointment?"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def contents(request: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request["messages"]]


async def test_one_ordered_history_reaches_every_callback_and_matches_what_the_llm_saw(
        world: LoopbackWorld) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with("It is on March 20th at 2 PM.")
    world.openai.reply_with("Confirmed, see you then.")
    phone = world.patter()
    agent = phone.agent(
        "You remind {patient_name} of the appointment on {appointment_date}.",
        first_message="Hello {patient_name}, this is Dr. Smith's office.",
        variables={"patient_name": "Jane Doe", "appointment_date": "March 20th at 2:00 PM"},
    )
    transcripts: list[Event] = []
    messages: list[Event] = []
    ended: list[Event] = []

    def on_transcript(event: Event) -> None:  # sync callback, and a careless one
        transcripts.append(event)
        event["history"].clear()

    async def on_message(event: Event) -> None:  # async callback, equally careless
        messages.append(event)
        for entry in event.get("history", []):
            entry["text"] = "tampered"

    await world.serve(phone, agent, on_transcript=on_transcript, on_message=on_message,
                      on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await wait_for(lambda: len(messages) == 2, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    call.phone.say_text(CALLER_SAYS)
    await wait_for(lambda: len(messages) == 3, timeout=30)  # heard the answer
    call.phone.press("1")
    await wait_for(lambda: len(messages) == 4, timeout=30)
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)

    expected = [
        ("assistant", "This call is with an AI assistant, and it may be recorded."),
        ("assistant", "Hello Jane Doe, this is Dr. Smith's office."),
        ("user", CALLER_SAYS),
        ("assistant", "It is on March 20th at 2 PM."),
        ("user", "[DTMF: 1]"),
        ("assistant", "Confirmed, see you then."),
    ]
    end = ended[0]
    assert [(e["role"], e["text"]) for e in end["transcript"]] == expected
    assert end.history == end["transcript"] == end.get("history")
    assert all(TIMESTAMP.match(e["timestamp"]) for e in end.history)
    assert [e["timestamp"] for e in end.history] == sorted(e["timestamp"] for e in end.history)
    # Each callback saw the history up to its own entry, untouched by earlier callbacks.
    assert [(t["role"], t["text"]) for t in transcripts] == [expected[2], expected[4]]
    assert [(m["role"], m["text"]) for m in messages] == [expected[i] for i in (0, 1, 3, 5)]
    assert [len(e["history"]) for e in messages] == [1, 2, 4, 6]
    assert transcripts[0]["history"] == []  # its own copy, cleared by the callback itself

    # The LLM saw the same conversation, variables filled in, each user message once.
    system = world.openai.chat_requests[0]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith(
        "You remind Jane Doe of the appointment on March 20th at 2:00 PM.")
    [_, last] = world.openai.chat_requests
    assert contents(last)[1:] == expected[:5]


async def test_a_callback_that_raises_is_logged_and_the_call_goes_on(
        world: LoopbackWorld, caplog: pytest.LogCaptureFixture) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with("Tomorrow at nine.")
    phone = world.patter()
    ended: list[Event] = []

    def broken_start(event: Event) -> None:
        raise RuntimeError("database down")

    async def broken_transcript(event: Event) -> None:
        raise ValueError("bad handler")

    def broken_message(event: Event) -> None:
        raise KeyError("missing")

    async def broken_end(event: Event) -> None:
        ended.append(event)
        raise RuntimeError("also broken")

    with caplog.at_level(logging.ERROR, logger="patter"):
        await world.serve(phone, phone.agent("You are a test bot.", first_message="Hi."),
                          on_call_start=broken_start, on_transcript=broken_transcript,
                          on_message=broken_message, on_call_end=broken_end)
        call = await world.call_in()
        assert call.phone is not None
        await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
        call.phone.say_text(CALLER_SAYS)
        await wait_for(lambda: "Tomorrow at nine." in world.openai.spoken, timeout=30)
        await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
        await call.phone.hang_up()
        await wait_for(lambda: bool(ended), timeout=10)
        await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    assert len(ended) == 1 and ended[0]["ended_by"] == "caller"
    assert [e["text"] for e in ended[0].history][-2:] == [CALLER_SAYS, "Tomorrow at nine."]
    failures = [r for r in caplog.records if r.getMessage() == "callback raised; the call goes on"]
    assert {r.callback for r in failures} >= {  # type: ignore[attr-defined]
        "test_a_callback_that_raises_is_logged_and_the_call_goes_on.<locals>.broken_start",
        "test_a_callback_that_raises_is_logged_and_the_call_goes_on.<locals>.broken_transcript",
        "test_a_callback_that_raises_is_logged_and_the_call_goes_on.<locals>.broken_message",
        "test_a_callback_that_raises_is_logged_and_the_call_goes_on.<locals>.broken_end",
    }
    assert all(r.exc_info for r in failures)
