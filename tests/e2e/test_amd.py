"""Answering machine detection end to end: each AnsweredBy verdict, before or after the stream."""

from __future__ import annotations

import asyncio

import pytest

from patter._agent import DEFAULT_DISCLOSURE
from patter._events import Event
from patter.testing import OutboundScript
from patter.testing.audio import best_match
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for
from patter.testing.phone import SimulatedPhone

GREETING = "Hello, this is Acme calling about your appointment."
VOICEMAIL = "Hi, this is Acme Corp calling about your appointment. Please call us back."
MACHINE_GREETING = "Hi, you have reached Sam. Please leave a message after the tone."
HUMAN_SAYS = "Hello? Who is calling please?"




async def place(
    world: LoopbackWorld,
    answered_by: str,
    *,
    amd_delay_s: float,
    twiml_delay_s: float = 0.0,
    **call_kwargs: object,
) -> tuple[FakeCall, SimulatedPhone, list[Event]]:
    """Call out with AMD; the far end answers and gets its verdict after ``amd_delay_s``
    (the stream opens after ``twiml_delay_s``)."""
    world.twilio.next_outbound = OutboundScript(
        answered_by=answered_by, amd_delay_s=amd_delay_s, twiml_delay_s=twiml_delay_s
    )
    phone = world.patter()
    agent = phone.agent("You remind people of appointments.", first_message=GREETING)
    ended: list[Event] = []
    await world.call_out(
        phone, agent, machine_detection=True, on_call_end=ended.append, **call_kwargs
    )
    call = await world.twilio.wait_for_call()
    callee = await call.wait_stream(timeout=20)
    return call, callee, ended


def verdict_before_stream(world: LoopbackWorld, call: FakeCall) -> bool:
    """Whether the AMD verdict was answered before the TwiML that opens the media stream."""
    kinds = [w.kind for w in world.twilio.webhook_responses if w.call_sid == call.sid]
    return "amd" in kinds and kinds.index("amd") < kinds.index("twiml")


def amd_sent(world: LoopbackWorld) -> bool:
    """Whether the fake Twilio has delivered the AMD verdict to the application."""
    return any(w.kind == "amd" for w in world.twilio.webhook_responses)


async def test_calls_json_asks_for_async_message_end_detection(world: LoopbackWorld) -> None:
    call, callee, _ = await place(world, "human", amd_delay_s=0.2)
    assert call.params["MachineDetection"] == "DetectMessageEnd"
    assert call.params["AsyncAmd"] == "true"
    assert call.params["AsyncAmdStatusCallback"] == f"{world.public_url}/twilio/amd"
    await wait_for(lambda: amd_sent(world), timeout=20)
    verdict = next(w for w in world.twilio.webhook_responses if w.kind == "amd")
    assert verdict.status == 204  # signed with the account's token and accepted
    await callee.hang_up()


@pytest.mark.parametrize(
    ("answered_by", "amd_delay_s", "twiml_delay_s"),
    [("human", 1.5, 0.0), ("unknown", 0.0, 0.5)],  # verdict after / before the stream starts
)
async def test_a_person_hears_the_disclosure_then_the_first_message(
    world: LoopbackWorld, answered_by: str, amd_delay_s: float, twiml_delay_s: float
) -> None:
    call, callee, ended = await place(
        world, answered_by, amd_delay_s=amd_delay_s, twiml_delay_s=twiml_delay_s
    )
    assert verdict_before_stream(world, call) if twiml_delay_s else not amd_sent(world)
    await wait_for(lambda: amd_sent(world), timeout=20)
    await callee.wait_for_heard(3.5, timeout=20)
    await callee.wait_until_quiet(quiet_s=0.6, timeout=20)

    heard = callee.heard_pcm()
    disclosure = openai_speech_at_8k(DEFAULT_DISCLOSURE)
    assert best_match(heard, disclosure[4000:12000]) > 0.6
    assert best_match(heard, openai_speech_at_8k(GREETING)[2000:8000]) > 0.6
    assert world.openai.spoken[-1] == GREETING
    await callee.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    assert ended[0]["answered_by"] == answered_by
    assert ended[0]["voicemail_left"] is False and ended[0]["ended_by"] == "caller"


async def test_while_detection_runs_the_agent_is_silent_and_keeps_what_the_person_said(
    world: LoopbackWorld,
) -> None:
    world.openai.transcripts.append(HUMAN_SAYS)
    world.openai.reply_with("This is Acme, calling about your appointment.")
    _, callee, ended = await place(world, "human", amd_delay_s=4.0)
    callee.say_text(HUMAN_SAYS)
    await callee.wait_said(timeout=20)

    assert not amd_sent(world)
    assert callee.received_of("media") == []  # nothing said over the callee
    assert world.openai.chat_requests == []

    await wait_for(lambda: amd_sent(world), timeout=20)
    await wait_for(lambda: bool(world.openai.chat_requests), timeout=30)
    user_messages = [
        m["content"] for m in world.openai.chat_requests[0]["messages"] if m["role"] == "user"
    ]
    assert user_messages == [HUMAN_SAYS]
    await callee.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    assert ended[0]["answered_by"] == "human"
    assert {"role": "user", "text": HUMAN_SAYS} in [
        {"role": e["role"], "text": e["text"]} for e in ended[0]["transcript"]
    ]


@pytest.mark.parametrize(
    ("answered_by", "amd_delay_s", "twiml_delay_s"),
    [
        ("machine_end_beep", 4.0, 0.0),  # verdict after the stream started, greeting held
        ("machine_end_silence", 4.0, 0.0),
        ("machine_end_other", 0.0, 0.5),  # verdict before the stream started
    ],
)
async def test_a_machine_gets_the_voicemail_once_then_the_call_is_hung_up(
    world: LoopbackWorld, answered_by: str, amd_delay_s: float, twiml_delay_s: float
) -> None:
    call, callee, ended = await place(
        world, answered_by, amd_delay_s=amd_delay_s, twiml_delay_s=twiml_delay_s,
        voicemail_message=VOICEMAIL,
    )
    assert verdict_before_stream(world, call) if twiml_delay_s else not amd_sent(world)
    callee.say_text(MACHINE_GREETING)
    await call.wait_ended(timeout=40)
    await wait_for(lambda: bool(ended), timeout=20)

    heard = callee.heard_pcm()
    disclosure = openai_speech_at_8k(DEFAULT_DISCLOSURE)
    voicemail = openai_speech_at_8k(VOICEMAIL)
    assert best_match(heard, disclosure[4000:12000]) > 0.6
    assert best_match(heard, voicemail[2000:8000]) > 0.6
    assert best_match(heard, voicemail[-8000:-2000]) > 0.6  # heard to the end before hang-up
    assert world.openai.spoken.count(VOICEMAIL) == 1
    assert GREETING not in world.openai.spoken
    # The machine's greeting is never answered: it reaches neither STT nor the LLM.
    assert world.openai.chat_requests == []
    assert world.openai.transcribed_audio == []
    assert [(path, params.get("Status")) for path, params in world.call_rest_requests()] == [
        ("/Calls.json", None),
        (f"/Calls/{call.sid}.json", "completed"),
    ]
    assert callee.closed_by_server or call.status == "completed"
    end = ended[0]
    assert end["answered_by"] == answered_by and end["voicemail_left"] is True
    assert end["ended_by"] == "agent"
    assert [(e["role"], e["text"]) for e in end["transcript"]] == [
        ("assistant", DEFAULT_DISCLOSURE), ("assistant", VOICEMAIL)
    ]
    assert len(ended) == 1


async def test_voicemail_message_of_serve_is_used_when_call_gives_none(
    world: LoopbackWorld,
) -> None:
    world.twilio.next_outbound = OutboundScript(answered_by="machine_end_beep", amd_delay_s=0.5)
    phone = world.patter()
    await world.serve(phone, phone.agent("Inbound bot."), voicemail_message=VOICEMAIL)
    handle = await phone.call("+15550009876", phone.agent("Outbound bot."),
                              machine_detection=True)
    end = await handle.wait(timeout_s=40)
    assert end["voicemail_left"] is True
    assert world.openai.spoken.count(VOICEMAIL) == 1


@pytest.mark.parametrize("answered_by", ["machine_end_silence", "fax"])
async def test_a_machine_without_voicemail_or_a_fax_is_hung_up_on_without_a_sound(
    world: LoopbackWorld, answered_by: str
) -> None:
    call, callee, ended = await place(world, answered_by, amd_delay_s=2.0)
    callee.say_text(MACHINE_GREETING)
    await call.wait_ended(timeout=30)
    await wait_for(lambda: bool(ended), timeout=20)

    assert callee.received_of("media") == []
    assert callee.heard_voiced_s == 0
    assert world.openai.chat_requests == [] and world.openai.transcribed_audio == []
    assert [(path, params.get("Status")) for path, params in world.call_rest_requests()] == [
        ("/Calls.json", None),
        (f"/Calls/{call.sid}.json", "completed"),
    ]
    assert ended[0]["answered_by"] == answered_by
    assert ended[0]["voicemail_left"] is False and ended[0]["ended_by"] == "agent"
    assert ended[0]["transcript"] == []  # not even the disclosure was said


async def test_machine_start_is_not_final_so_the_agent_keeps_waiting(
    world: LoopbackWorld,
) -> None:
    _, callee, ended = await place(
        world, "machine_start", amd_delay_s=0.2, voicemail_message=VOICEMAIL
    )
    callee.say_text(MACHINE_GREETING)
    await wait_for(lambda: amd_sent(world), timeout=20)
    await asyncio.sleep(1.0)  # proving that nothing is said or answered
    assert callee.received_of("media") == []
    assert world.openai.chat_requests == []
    await callee.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    assert ended[0]["answered_by"] == "machine_start"
    assert ended[0]["voicemail_left"] is False and ended[0]["ended_by"] == "caller"


async def test_a_machine_that_hangs_up_during_the_voicemail_ends_the_call_once_unleft(
    world: LoopbackWorld,
) -> None:
    call, callee, ended = await place(
        world, "machine_end_beep", amd_delay_s=0.5, voicemail_message=VOICEMAIL
    )
    disclosure_s = len(openai_speech_at_8k(DEFAULT_DISCLOSURE)) / 16000
    await callee.wait_for_heard(disclosure_s + 1.0, timeout=30)  # into the voicemail

    await callee.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    assert len(ended) == 1
    end = ended[0]
    assert end["voicemail_left"] is False and end["ended_by"] == "caller"
    assert end["answered_by"] == "machine_end_beep"
    voicemail = openai_speech_at_8k(VOICEMAIL)
    assert best_match(callee.heard_pcm(), voicemail[-8000:-2000]) < 0.5  # its end never played
    # No hang-up request: the machine had already ended the call.
    assert [path for path, _ in world.call_rest_requests()] == ["/Calls.json"]
