"""Outbound calls end to end: Calls.json → status callbacks → voice webhook → stream → callee."""

from __future__ import annotations

import asyncio

import pytest

from patter import OutboundCall, PatterConfigError
from patter._events import Event
from patter.testing import OutboundScript
from patter.testing.audio import best_match
from patter.testing.harness import (
    CALLEE_NUMBER,
    PATTER_NUMBER,
    LoopbackWorld,
    openai_speech_at_8k,
    wait_for,
)

GREETING = "Hello, this is Acme calling about your order."




async def test_call_without_serve_starts_the_server_and_the_callee_hears_the_agent(
    world: LoopbackWorld,
) -> None:
    phone = world.patter()
    agent = phone.agent("You are calling about an order.", first_message=GREETING)
    started: list[Event] = []
    ended: list[Event] = []

    handle = await world.call_out(
        phone, agent, on_call_start=started.append, on_call_end=ended.append
    )

    assert isinstance(handle, OutboundCall)
    call = await world.twilio.wait_for_call()
    assert handle.call_sid == call.sid
    path, params = world.call_rest_requests()[0]
    assert path == "/Calls.json"
    assert params["To"] == CALLEE_NUMBER and params["From"] == PATTER_NUMBER
    assert params["Url"] == f"{world.public_url}/twilio/voice"
    assert params["StatusCallback"] == f"{world.public_url}/twilio/status"
    status_events = world.twilio.requests[0].param_lists["StatusCallbackEvent"]
    assert status_events == ["initiated", "ringing", "answered", "completed"]
    assert "MachineDetection" not in params and "Record" not in params

    callee = await call.wait_stream(timeout=20)
    await callee.wait_for_heard(3.5, timeout=20)
    await callee.wait_until_quiet(quiet_s=0.6, timeout=20)
    heard = callee.heard_pcm()
    assert best_match(heard, openai_speech_at_8k(agent.disclosure)[4000:12000]) > 0.6
    assert best_match(heard, openai_speech_at_8k(GREETING)[2000:8000]) > 0.6
    assert [w.kind for w in world.twilio.webhook_responses][:4] == [
        "status", "status", "status", "twiml"
    ]
    assert all(w.status == 204 for w in world.twilio.webhook_responses if w.kind == "status")

    await callee.hang_up()
    end = await handle.wait(timeout_s=20)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert ended == [end]
    assert end["ended_by"] == "caller" and end["status"] == "completed"
    assert end["answered_by"] is None and end["voicemail_left"] is False
    assert end["call_sid"] == call.sid and end["direction"] == "outbound"
    assert len(started) == 1
    assert started[0]["callee"] == CALLEE_NUMBER and started[0]["caller"] == PATTER_NUMBER
    assert started[0]["direction"] == "outbound"
    await wait_for(lambda: handle.status == "completed", timeout=10)
    # call() places calls; it leaves the number's inbound configuration alone.
    assert not [r for r in world.twilio.requests if "IncomingPhoneNumbers" in r.path]


async def test_call_while_serving_uses_that_server_and_the_calls_own_agent(
    world: LoopbackWorld,
) -> None:
    phone = world.patter()
    served_ends: list[Event] = []
    await world.serve(
        phone, phone.agent("Inbound receptionist.", first_message="Thanks for calling."),
        on_call_end=served_ends.append,
    )
    outbound_agent = phone.agent("Outbound reminder.", first_message=GREETING)

    handle = await phone.call(CALLEE_NUMBER, outbound_agent)

    call = await world.twilio.wait_for_call()
    callee = await call.wait_stream(timeout=20)
    await wait_for(lambda: GREETING in world.openai.spoken, timeout=20)
    assert "Thanks for calling." not in world.openai.spoken
    await callee.wait_until_quiet(quiet_s=0.6, timeout=20)
    await callee.hang_up()
    end = await handle.wait(timeout_s=20)
    assert served_ends == [end]  # serve()'s callbacks apply unless call() overrides them
    assert end["callee"] == CALLEE_NUMBER


async def call_without_conversation(
    world: LoopbackWorld, far_end: OutboundScript
) -> tuple[OutboundCall, Event]:
    """Call out to ``far_end`` (which never gets to talk); return the handle and the one
    ``on_call_end`` event, after checking that ``on_call_start`` never fired."""
    world.twilio.next_outbound = far_end
    phone = world.patter()
    started: list[Event] = []
    ended: list[Event] = []
    handle = await world.call_out(
        phone, phone.agent("You are a test bot."),
        on_call_start=started.append, on_call_end=ended.append,
    )
    end = await handle.wait(timeout_s=30)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert ended == [end] and started == []
    return handle, end


@pytest.mark.parametrize("answer", ["busy", "no-answer", "failed"])
async def test_call_that_never_connects_ends_once_with_its_status(
    world: LoopbackWorld, answer: str
) -> None:
    handle, end = await call_without_conversation(
        world, OutboundScript(answer=answer)  # type: ignore[arg-type]
    )

    assert end["ended_by"] == answer and end["status"] == answer
    assert end["transcript"] == [] and end["history"] == []
    assert end["callee"] == CALLEE_NUMBER and end["direction"] == "outbound"
    assert handle.status == answer and handle.done
    call = world.twilio.calls[handle.call_sid]
    assert [r.params["CallStatus"] for r in call.status_callbacks] == [
        "initiated", "ringing", answer
    ]
    assert all(r.status == 204 for r in call.status_callbacks)
    assert call.phone is None
    assert [path for path, _ in world.call_rest_requests()] == ["/Calls.json"]


async def test_a_call_answered_whose_stream_never_starts_ends_once_as_completed(
    world: LoopbackWorld,
) -> None:
    # The stream comes without its token (e.g. a proxy dropped the parameters): refused.
    handle, end = await call_without_conversation(
        world, OutboundScript(phone_options={"custom_parameters": {}})
    )

    assert end["ended_by"] == "completed" and end["status"] == "completed"
    assert end["transcript"] == [] and end["voicemail_left"] is False
    call = world.twilio.calls[handle.call_sid]
    assert call.status == "completed" and call.phone is not None
    assert call.phone.closed_by_server and call.phone.received_of("media") == []
    assert world.openai.chat_requests == [] and world.openai.transcribed_audio == []


@pytest.mark.parametrize("to", ["5550009876", "+1 555 000 9876", "+0123456789", "", None])
async def test_invalid_to_is_refused_before_anything_is_dialled(
    world: LoopbackWorld, to: object
) -> None:
    phone = world.patter()
    with pytest.raises(PatterConfigError, match=r"call\(to=\.\.\.\) must be an E\.164"):
        await phone.call(to, phone.agent("You are a test bot."))  # type: ignore[arg-type]
    assert world.twilio.requests == []


async def test_close_hangs_up_a_call_still_ringing_and_ends_it_once(world: LoopbackWorld) -> None:
    world.twilio.next_outbound = OutboundScript(ring_s=30)
    phone = world.patter()
    ended: list[Event] = []
    handle = await world.call_out(phone, phone.agent("You are a test bot."),
                                  on_call_end=ended.append)
    await wait_for(lambda: handle.status == "ringing", timeout=20)

    await phone.close()

    end = await handle.wait(timeout_s=10)
    assert ended == [end]
    assert end["ended_by"] == "shutdown" and end["status"] == "ringing"
    call = world.twilio.calls[handle.call_sid]
    assert call.status == "completed" and call.phone is None
    assert world.call_rest_requests()[-1] == (f"/Calls/{call.sid}.json", {"Status": "completed"})


async def test_serve_refuses_to_start_beside_the_server_call_started(world: LoopbackWorld) -> None:
    phone = world.patter()
    agent = phone.agent("You are a test bot.")
    world.twilio.next_outbound = OutboundScript(answer="busy")
    handle = await world.call_out(phone, agent)
    await handle.wait(timeout_s=20)
    with pytest.raises(PatterConfigError, match=r"phone\.close\(\)"):
        await phone.serve(agent, port=world.port, host="127.0.0.1")
