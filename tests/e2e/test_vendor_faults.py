"""Vendor faults during a call, end to end: what the caller hears, and what the history says.

Each scenario runs a whole call in its own loopback world (its own fakes, so their fault
queues are its own); independent scenarios run side by side to keep the suite short.
The caller's silence is measured from their last voiced sound to the agent's first audio
on the simulated phone: it includes Patter's end-of-turn detection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from patter._events import Event
from patter._recovery import (
    DEFAULT_APOLOGY,
    DEFAULT_DIDNT_CATCH,
    DEFAULT_GOODBYE,
    DEFAULT_TRANSFER_GOODBYE,
)
from patter.audio import PHONE_RATE_HZ, frame_levels_dbfs
from patter.errors import PatterConfigError
from patter.testing.audio import best_match
from patter.testing.fake_twilio import FakeCall
from patter.testing.faults import Fault
from patter.testing.harness import (
    LoopbackWorld,
    agent_turn_over,
    openai_speech_at_8k,
    wait_for,
)
from patter.testing.phone import SimulatedPhone

MAX_SILENCE_S = 3.0
"""The longest a caller may wait in silence after speaking, whatever failed (issue 15)."""
VOICED_DBFS = -45.0
FALLBACK = "+15550003333"
FIRST_LINE = "What are your opening hours?"
SECOND_LINE = "Do you open on Sundays?"
THIRD_LINE = "What time do you close today?"


def answer(line: str) -> str:
    """What the fake LLM answers to ``line`` (its default responder echoes)."""
    return f"You said: {line}"


def trailing_silence_s(pcm: bytes) -> float:
    """How long ``pcm`` (8 kHz) ends in silence: the caller's speech ended that much earlier."""
    levels = frame_levels_dbfs(pcm, sample_rate_hz=PHONE_RATE_HZ, frame_ms=20)
    voiced = [i for i, level in enumerate(levels) if level > VOICED_DBFS]
    return (len(levels) - 1 - voiced[-1]) * 0.02 if voiced else 0.0


@dataclass
class Turn:
    """One caller line and what followed it."""

    silence_s: float
    """From the caller's last voiced sound to the agent's first audio playing."""
    heard: bytes
    """What the caller heard after speaking."""

    def has(self, text: str) -> bool:
        """Whether the fake OpenAI voice saying ``text`` is in what was heard (its second
        second: the lines all begin alike, "Sorry, I...")."""
        return best_match(self.heard, openai_speech_at_8k(text)[12000:28000]) > 0.6


@dataclass
class Call:
    """A call in progress in its own world."""

    world: LoopbackWorld
    call: FakeCall
    ended: list[Event] = field(default_factory=list)

    @property
    def phone(self) -> SimulatedPhone:
        assert self.call.phone is not None
        return self.call.phone

    async def say(self, text: str, *, transcribed: bool = True) -> Turn:
        """The caller says ``text`` (the fake STT hears it, unless the transcription is to
        fail); wait until the agent has answered and gone quiet."""
        if transcribed:
            self.world.openai.transcripts.append(text)
        before, seen = len(self.phone.heard_pcm()), len(self.phone.events)
        pcm = self.phone.say_text(text)
        await agent_turn_over(self.phone, answer_s=0.8, answer_timeout_s=20)
        events = self.phone.events[seen:]
        audio_ended = next(e.t for e in events if e.kind == "caller_audio_ended")
        spoke_until = audio_ended - trailing_silence_s(pcm)  # the answer may come before
        first_audio = next(e.t for e in events                # the end of that silence
                           if e.kind == "playout_started" and e.t > spoke_until)
        return Turn(first_audio - spoke_until, self.phone.heard_pcm()[before:])

    async def end(self) -> Event:
        """The caller hangs up (unless the call is over); ``on_call_end``'s one event."""
        if not self.ended and self.call.status == "in-progress":
            await self.call.hang_up()
        await wait_for(lambda: bool(self.ended), timeout=20)
        await asyncio.sleep(0.3)  # a second on_call_end would arrive here
        assert len(self.ended) == 1
        return self.ended[0]


Scenario = Callable[[LoopbackWorld], Awaitable[Any]]


async def in_own_world(scenario: Scenario) -> Any:
    async with LoopbackWorld() as world:
        return await scenario(world)


async def side_by_side(*scenarios: Scenario, at_once: int = 2) -> list[Any]:
    """Run each scenario in its own world, ``at_once`` at a time (more would slow the
    caller's end-of-turn detection on a small machine, which the silence includes)."""
    slots = asyncio.Semaphore(at_once)

    async def run(scenario: Scenario) -> Any:
        async with slots:
            return await in_own_world(scenario)

    return list(await asyncio.gather(*(run(s) for s in scenarios)))


async def start_call(world: LoopbackWorld, **agent_kwargs: Any) -> Call:
    """An inbound call whose disclosure was heard. Faults are queued after this: the
    agent's lines were rendered with the same fake TTS when it started serving."""
    phone = world.patter()
    ended: list[Event] = []
    agent = phone.agent("You are the front desk of a shop.", **agent_kwargs)
    await world.serve(phone, agent, on_call_end=ended.append)
    call = Call(world, await world.call_in(), ended)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    return call


def texts(event: Event) -> list[tuple[str, str]]:
    """The history as (role, text), the disclosure left out."""
    return [(e["role"], e["text"]) for e in event["transcript"]][1:]


async def fault_then_recovery(world: LoopbackWorld, request: str, fault: Fault,
                              times: int) -> tuple[Turn, Turn, Event]:
    """The first caller line meets ``fault`` ``times`` times; the second line meets none."""
    call = await start_call(world)
    world.openai.faults.add(request, fault, times=times)
    failed = await call.say(FIRST_LINE, transcribed=request != "transcription")
    assert world.openai.faults.pending(request) == 0
    answered = await call.say(SECOND_LINE)
    return failed, answered, await call.end()


async def test_each_vendor_fault_gets_an_apology_in_time_and_the_next_line_an_answer() -> None:
    # Two faults each: the first try and its one retry (the OpenAI SDK's own, for the LLM).
    llm_500, llm_hang, tts_500, stt_500 = await side_by_side(
        lambda w: fault_then_recovery(w, "chat", Fault.http(500), times=2),
        lambda w: fault_then_recovery(w, "chat", Fault.hang(), times=2),
        lambda w: fault_then_recovery(w, "speech", Fault.http(500), times=2),
        lambda w: fault_then_recovery(w, "transcription", Fault.http(500), times=2),
    )
    for name, (failed, answered, ended) in {"llm 500": llm_500, "llm hang": llm_hang,
                                            "tts 500": tts_500}.items():
        assert failed.silence_s < MAX_SILENCE_S, name
        assert failed.has(DEFAULT_APOLOGY), name
        assert not failed.has(answer(FIRST_LINE)), name
        assert answered.has(answer(SECOND_LINE)), name
        # The caller's words stay; the answer never heard is not there; the apology is.
        assert texts(ended) == [
            ("user", FIRST_LINE), ("assistant", DEFAULT_APOLOGY),
            ("user", SECOND_LINE), ("assistant", answer(SECOND_LINE)),
        ], name
        assert ended["ended_by"] == "caller", name

    failed, answered, ended = stt_500
    assert failed.silence_s < MAX_SILENCE_S
    assert failed.has(DEFAULT_DIDNT_CATCH) and not failed.has(DEFAULT_APOLOGY)
    assert answered.has(answer(SECOND_LINE))
    assert texts(ended) == [("assistant", DEFAULT_DIDNT_CATCH), ("user", SECOND_LINE),
                            ("assistant", answer(SECOND_LINE))]

    assert llm_500[2]["errors"] == [{"step": "llm", "vendor": "openai", "kind": "server",
                                     "count": 1}]
    assert llm_hang[2]["errors"] == [{"step": "llm", "vendor": "openai", "kind": "timeout",
                                      "count": 1}]
    assert tts_500[2]["errors"] == [{"step": "tts", "vendor": "openai", "kind": "server",
                                     "count": 1}]
    assert stt_500[2]["errors"] == [{"step": "stt", "vendor": "openai", "kind": "server",
                                     "count": 1}]


async def one_fault_is_retried(world: LoopbackWorld, request: str,
                               fault: Fault) -> tuple[Turn, Event, int]:
    call = await start_call(world)
    world.openai.faults.add(request, fault)
    turn = await call.say(FIRST_LINE)
    requests = sum(1 for f in world.openai.faults.fired if f.request == request)
    return turn, await call.end(), requests


async def stream_cut_after_first_token(world: LoopbackWorld) -> tuple[Turn, Turn, Event]:
    call = await start_call(world)
    world.openai.reply_with("Certainly, we are open every day from nine to five.")
    world.openai.faults.add("chat", Fault.cut())
    cut = await call.say(FIRST_LINE)
    answered = await call.say(SECOND_LINE)
    return cut, answered, await call.end()


async def test_a_failed_first_try_is_retried_at_once_and_a_cut_stream_spoils_one_turn() -> None:
    *retried, cut_stream = await side_by_side(
        lambda w: one_fault_is_retried(w, "chat", Fault.http(500)),
        lambda w: one_fault_is_retried(w, "chat", Fault.hang()),  # Pipecat's retry_on_timeout
        lambda w: one_fault_is_retried(w, "speech", Fault.http(500)),
        lambda w: one_fault_is_retried(w, "speech", Fault.hang()),
        lambda w: one_fault_is_retried(w, "transcription", Fault.http(500)),
        stream_cut_after_first_token,
    )
    for turn, ended, faulted in retried:
        # One fault taken, then the retry answered: the caller hears the answer, no apology.
        assert faulted == 1
        assert turn.silence_s < MAX_SILENCE_S
        assert turn.has(answer(FIRST_LINE)) and not turn.has(DEFAULT_APOLOGY)
        assert texts(ended) == [("user", FIRST_LINE), ("assistant", answer(FIRST_LINE))]
        assert ended["errors"] == []

    cut, answered, ended = cut_stream
    # The first word came before the cut: nothing is retried (it would be said twice).
    assert cut.silence_s < MAX_SILENCE_S
    assert answered.has(answer(SECOND_LINE))
    assert texts(ended)[-2:] == [("user", SECOND_LINE), ("assistant", answer(SECOND_LINE))]


async def tts_down_for_good(world: LoopbackWorld) -> tuple[list[Turn], Event, FakeCall]:
    call = await start_call(world)
    world.openai.faults.add("speech", Fault.http(500), times=20)
    turns = [await call.say(line) for line in (FIRST_LINE, SECOND_LINE, THIRD_LINE)]
    return turns, await call.end(), call.call


async def llm_down_with_a_fallback(world: LoopbackWorld) -> tuple[Turn, Event, FakeCall]:
    call = await start_call(world, max_failed_turns=1, fallback_number=FALLBACK)
    world.openai.faults.add("chat", Fault.http(500), times=20)
    turn = await call.say(FIRST_LINE)
    return turn, await call.end(), call.call


async def test_after_failed_turns_the_agent_says_goodbye_and_hangs_up_or_transfers() -> None:
    (turns, ended, call), (turn, transferred, fallback_call) = await side_by_side(
        tts_down_for_good, llm_down_with_a_fallback)

    # The TTS is down all along, yet every line the agent says is heard: they were
    # rendered ahead. After the third failed turn: goodbye, and the agent hangs up.
    assert all(t.silence_s < MAX_SILENCE_S for t in turns)
    assert turns[0].has(DEFAULT_APOLOGY) and turns[1].has(DEFAULT_APOLOGY)
    assert turns[2].has(DEFAULT_GOODBYE)
    assert texts(ended) == [
        ("user", FIRST_LINE), ("assistant", DEFAULT_APOLOGY),
        ("user", SECOND_LINE), ("assistant", DEFAULT_APOLOGY),
        ("user", THIRD_LINE), ("assistant", DEFAULT_GOODBYE),
    ]
    assert ended["ended_by"] == "error" and ended["transfer_to"] is None
    assert ended["errors"] == [{"step": "tts", "vendor": "openai", "kind": "server",
                                "count": 3}]
    assert call.status == "completed" and call.dials == []

    # With a fallback number, one failed turn is enough here: the caller is put through.
    assert turn.has(DEFAULT_TRANSFER_GOODBYE)
    assert [d.number for d in fallback_call.dials] == [FALLBACK]
    assert transferred["ended_by"] == "transfer" and transferred["transfer_to"] == FALLBACK
    assert transferred["errors"] == [{"step": "llm", "vendor": "openai", "kind": "server",
                                      "count": 1}]
    assert texts(transferred) == [("user", FIRST_LINE),
                                  ("assistant", DEFAULT_TRANSFER_GOODBYE)]


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"response_deadline_s": 0.2}, "response_deadline_s"),
        ({"response_deadline_s": "2"}, "response_deadline_s"),
        ({"max_failed_turns": 0}, "max_failed_turns"),
        ({"fallback_number": "555-0100"}, "fallback_number"),
        ({"apology": " "}, "apology"),
        ({"goodbye": ""}, "goodbye"),
    ],
)
async def test_bad_vendor_failure_settings_name_the_fix(
        world: LoopbackWorld, kwargs: dict[str, Any], names: str) -> None:
    phone = world.patter()
    with pytest.raises(PatterConfigError, match=rf"agent\({names}="):
        phone.agent("You are a test bot.", **kwargs)


async def test_the_wording_and_the_deadline_are_the_agent_s(world: LoopbackWorld) -> None:
    phone = world.patter()
    agent = phone.agent("You are a test bot.", apology="One second please.",
                        response_deadline_s=4, fallback_number=FALLBACK)
    assert agent.recovery.apology == "One second please."
    assert agent.recovery.goodbye == DEFAULT_TRANSFER_GOODBYE
    assert agent.recovery.deadlines.response_s == 4.0
    assert agent.recovery.fallback_number == FALLBACK
