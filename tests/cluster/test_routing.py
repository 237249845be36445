"""Callbacks that land on an instance other than the one holding the call reach that one."""

from __future__ import annotations

import asyncio

import httpx
from _instances import Instances
from twilio.request_validator import RequestValidator

from patter._agent import DEFAULT_DISCLOSURE
from patter._cluster import Cluster
from patter._events import Event
from patter._redis_link import RedisLink
from patter.testing import OutboundScript
from patter.testing.audio import best_match
from patter.testing.harness import CALLEE_NUMBER, LoopbackWorld, openai_speech_at_8k, wait_for

GREETING = "Hello, this is Acme calling about your appointment."
VOICEMAIL = "Hi, this is Acme Corp calling about your appointment. Please call us back."
MACHINE_GREETING = "Hi, you have reached Sam. Please leave a message after the tone."


def amd_sent(world: LoopbackWorld) -> bool:
    """Whether the fake Twilio has delivered the AMD verdict."""
    return any(w.kind == "amd" for w in world.twilio.webhook_responses)


async def test_an_amd_verdict_landing_on_another_instance_leaves_the_voicemail_once(
    world: LoopbackWorld, instances: Instances
) -> None:
    a, b = await instances.serve(2)
    world.twilio.next_outbound = OutboundScript(answered_by="machine_end_beep", amd_delay_s=4.0)
    ended: list[Event] = []
    agent = a.phone.agent("You remind people of appointments.", first_message=GREETING)
    await a.phone.call(CALLEE_NUMBER, agent, machine_detection=True,
                       voicemail_message=VOICEMAIL, on_call_end=ended.append)
    call = await world.twilio.wait_for_call()
    callee = await call.wait_stream(timeout=20)
    instances.route_to(b)  # the verdict and the status callbacks land on B from now on
    assert not amd_sent(world)

    callee.say_text(MACHINE_GREETING)
    await call.wait_ended(timeout=40)
    await wait_for(lambda: bool(ended), timeout=20)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    heard = callee.heard_pcm()
    voicemail = openai_speech_at_8k(VOICEMAIL)
    assert best_match(heard, openai_speech_at_8k(DEFAULT_DISCLOSURE)[4000:12000]) > 0.6
    assert best_match(heard, voicemail[-8000:-2000]) > 0.6  # heard to the end
    assert world.openai.spoken.count(VOICEMAIL) == 1
    assert [w.status for w in world.twilio.webhook_responses if w.kind == "amd"] == [204]
    assert len(ended) == 1
    assert ended[0]["answered_by"] == "machine_end_beep"
    assert ended[0]["voicemail_left"] is True
    assert ended[0]["call_sid"] == call.sid


async def test_a_recording_callback_landing_on_another_instance_reaches_on_recording(
    world: LoopbackWorld, instances: Instances
) -> None:
    recordings: list[Event] = []
    a, b = await instances.serve(2, recording=True, on_recording=recordings.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.5, timeout=20)
    instances.route_to(b)

    await call.phone.hang_up()
    await wait_for(lambda: bool(recordings), timeout=20)

    assert recordings[0]["call_sid"] == call.sid
    assert recordings[0]["recording"]["status"] == "completed"
    assert [w.status for w in world.twilio.webhook_responses if w.kind == "recording"] == [204]


async def test_a_voice_webhook_for_a_call_placed_elsewhere_is_answered_for_its_owner(
    world: LoopbackWorld, instances: Instances, redis_url: str
) -> None:
    a, b = await instances.serve(2)
    world.twilio.next_outbound = OutboundScript(ring_s=60.0)  # rings until the test ends
    placed = await b.phone.call(CALLEE_NUMBER, b.phone.agent("You call people."))
    observer = Cluster(RedisLink(redis_url), instance_id="observer")
    await observer.link.connect()
    owner = await observer.owner_of(placed.call_sid)
    assert owner == b.phone.instance_id

    params = {
        "AccountSid": world.twilio.account_sid, "CallSid": placed.call_sid,
        "CallStatus": "in-progress", "Direction": "outbound-api",
        "From": a.phone.phone_number, "To": CALLEE_NUMBER,
    }
    url = f"{world.public_url}/twilio/voice"
    signature = RequestValidator(world.twilio.auth_token).compute_signature(url, params)
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(f"{a.local_url}/twilio/voice", data=params,
                                   headers={"x-twilio-signature": signature})

    assert answer.status_code == 200 and "<Stream" in answer.text
    assert await observer.owner_of(placed.call_sid) == owner  # A answered; B holds the call
    await observer.close()
