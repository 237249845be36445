"""FakeTwilio against the real ``twilio`` SDK: numbers, signed inbound calls and their
Media Stream, REST updates and TwiML."""

from __future__ import annotations

import asyncio
import base64

import pytest
from _fake_twilio_app import (
    CALLER,
    OUR_NUMBER,
    PUBLIC,
    World,
)
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from patter.testing import OutboundScript
from patter.testing.audio import best_match, mulaw_to_pcm, pcm_to_mulaw, synthesize_speech


async def test_the_sdk_lists_and_configures_numbers_on_the_fake(twilio_world: World) -> None:
    numbers_api = twilio_world.client.incoming_phone_numbers
    numbers = await twilio_world.sdk(numbers_api.list, phone_number=OUR_NUMBER)
    assert [n.phone_number for n in numbers] == [OUR_NUMBER]
    updated = await twilio_world.sdk(
        twilio_world.client.incoming_phone_numbers(numbers[0].sid).update,
        voice_url=f"{PUBLIC}/voice?v=2", voice_method="POST", status_callback=f"{PUBLIC}/status",
    )
    assert updated.voice_url == f"{PUBLIC}/voice?v=2"
    assert twilio_world.fake.numbers[OUR_NUMBER].status_callback == f"{PUBLIC}/status"
    assert twilio_world.fake.requests[-1].params["VoiceMethod"] == "POST"
    assert await twilio_world.sdk(numbers_api.list, phone_number="+1999") == []


async def test_the_sdk_is_refused_with_a_wrong_token(twilio_world: World) -> None:
    intruder = Client(twilio_world.fake.account_sid, "wrong-token")
    intruder.api.base_url = twilio_world.fake.base_url
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(intruder.calls.create, to=CALLER, from_=OUR_NUMBER, url=PUBLIC)
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert twilio_world.fake.calls == {}
    assert not twilio_world.fake.requests[-1].authorized


async def test_an_inbound_call_is_signed_and_streams_audio_both_ways(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    (params, valid), = twilio_world.app.hooks["voice"]
    assert valid and call.webhook_status == 200
    assert params["Direction"] == "inbound" and params["CallStatus"] == "ringing"
    assert (params["From"], params["To"], params["CallSid"]) == (CALLER, OUR_NUMBER, call.sid)
    stream = await twilio_world.app.next_stream()
    assert twilio_world.app.stream_signature_ok == [True]
    await stream.wait_until(lambda: bool(stream.of("start")))
    start = stream.of("start")[0]["start"]
    assert start["customParameters"] == {"token": "per-call-secret"}
    assert (start["callSid"], start["accountSid"]) == (call.sid, twilio_world.fake.account_sid)
    assert call.phone is not None and call.status == "in-progress"

    spoken = call.phone.say_text("I would like to book a table")
    await call.phone.wait_said()
    sent = len(call.phone.sent)
    await stream.wait_until(lambda: len(stream.messages) >= sent)
    inbound = b"".join(base64.b64decode(m["media"]["payload"]) for m in stream.of("media"))
    assert best_match(mulaw_to_pcm(inbound), spoken) > 0.9

    reply = pcm_to_mulaw(synthesize_speech("Sure, for how many people?"))
    payload = base64.b64encode(reply).decode()
    await stream.send({"event": "media", "streamSid": start["streamSid"],
                       "media": {"payload": payload}})
    await stream.send({"event": "mark", "streamSid": start["streamSid"], "mark": {"name": "r1"}})
    await stream.wait_until(lambda: bool(stream.of("mark")))
    assert call.phone.heard_pcm() == mulaw_to_pcm(reply)


async def test_a_forged_signature_is_refused_by_the_application(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call(signature="Zm9yZ2Vk")
    assert call.webhook_status == 403
    assert call.phone is None and call.status == "completed"
    assert twilio_world.app.hooks["voice"][0][1] is False
    signed_elsewhere = await twilio_world.fake.place_inbound_call(sign_url="https://evil.example/voice")
    unsigned = await twilio_world.fake.place_inbound_call(unsigned=True)
    assert signed_elsewhere.webhook_status == unsigned.webhook_status == 403


async def test_the_stream_ending_from_the_server_runs_the_next_verb(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    stream = await twilio_world.app.next_stream()
    await stream.ws.close()
    await call.wait_ended()
    assert call.said == ["Goodbye"]
    assert call.status == "completed"
    assert call.phone is not None and call.phone.closed_by_server


async def test_a_transfer_by_rest_update_stops_the_stream_and_dials(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    stream = await twilio_world.app.next_stream()
    transfer = (
        '<Response><Play>https://cdn.example.com/hold.mp3</Play>'
        f'<Dial callerId="{OUR_NUMBER}">+15559998888</Dial></Response>'
    )
    updated = await twilio_world.sdk(twilio_world.client.calls(call.sid).update, twiml=transfer)
    assert updated.sid == call.sid
    await stream.wait_until(lambda: stream.done.is_set())
    assert stream.messages[-1]["event"] == "stop"
    await call.wait_ended()
    assert call.played == ["https://cdn.example.com/hold.mp3"]
    assert [(d.number, d.caller_id) for d in call.dials] == [("+15559998888", OUR_NUMBER)]
    assert call.said == [] and call.updates[0]["Twiml"] == transfer
    assert call.phone is not None and not call.phone.closed_by_server


async def test_the_caller_hanging_up_sends_stop_and_completes_the_call(twilio_world: World) -> None:
    twilio_world.fake.numbers[OUR_NUMBER].status_callback = f"{PUBLIC}/status"
    call = await twilio_world.fake.place_inbound_call()
    stream = await twilio_world.app.next_stream()
    await call.hang_up()
    assert call.status == "completed" and call.ended.is_set()
    await stream.wait_until(lambda: stream.done.is_set())
    assert stream.of("stop")[0]["stop"]["callSid"] == call.sid
    (params, valid), = twilio_world.app.hooks["status"]
    assert valid and params["CallStatus"] == "completed"
    assert call.said == []


async def test_an_ended_call_answers_20404_to_updates(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    await twilio_world.sdk(twilio_world.client.calls(call.sid).update, status="completed")
    assert call.status == "completed"
    await call.wait_ended()
    with pytest.raises(TwilioRestException) as caught:
        await twilio_world.sdk(twilio_world.client.calls(call.sid).update, status="completed")
    assert (caught.value.status, caught.value.code) == (404, 20404)
    fetched = await twilio_world.sdk(twilio_world.client.calls(call.sid).fetch)
    assert fetched.status == "completed"


async def test_a_stream_url_that_is_not_wss_is_refused_like_twilio(twilio_world: World) -> None:
    twilio_world.app.twiml["voice"] = (
        '<Response><Connect><Stream url="ws://agent.example.com/media"/></Connect>'
        "<Hangup/></Response>"
    )
    call = await twilio_world.fake.place_inbound_call()
    await call.wait_ended()
    assert call.phone is None and "wss://" in call.stream_errors[0]
    with pytest.raises(RuntimeError, match="stream errors"):
        await call.wait_stream()


async def test_a_rest_update_with_a_url_fetches_signed_twiml_and_follows_redirects(
    twilio_world: World,
) -> None:
    twilio_world.app.twiml["menu"] = (
        "<Response><Say>Menu</Say><Redirect>https://agent.example.com/bye</Redirect></Response>"
    )
    twilio_world.app.twiml["bye"] = "<Response><Say>Bye</Say><Hangup/></Response>"
    call = await twilio_world.fake.place_inbound_call()
    stream = await twilio_world.app.next_stream()
    await twilio_world.sdk(twilio_world.client.calls(call.sid).update, url=f"{PUBLIC}/menu")
    await call.wait_ended()
    assert stream.of("stop") and call.said == ["Menu", "Bye"]
    hooks = twilio_world.app.hooks
    assert [valid for _, valid in hooks["menu"] + hooks["bye"]] == [True] * 2
    assert twilio_world.app.hooks["bye"][0][0]["CallStatus"] == "in-progress"
    assert len(call.twiml_history) == 3


async def test_sync_amd_puts_answered_by_on_the_twiml_request(twilio_world: World) -> None:
    twilio_world.fake.next_outbound = OutboundScript(answered_by="human", amd_delay_s=0.01)
    twilio_world.app.twiml["twiml"] = "<Response><Hangup/></Response>"
    await twilio_world.sdk(twilio_world.client.calls.create, to=CALLER, from_=OUR_NUMBER,
                    url=f"{PUBLIC}/twiml", machine_detection="Enable")
    call = await twilio_world.fake.wait_for_call()
    await call.wait_ended()
    (params, valid), = twilio_world.app.hooks["twiml"]
    assert valid and params["AnsweredBy"] == "human"


async def test_a_get_voice_webhook_is_signed_on_its_full_url(twilio_world: World) -> None:
    twilio_world.fake.numbers[OUR_NUMBER].voice_method = "GET"
    call = await twilio_world.fake.place_inbound_call(params={"Extra": "a b&c"})
    (params, valid), = twilio_world.app.hooks["voice"]
    assert valid and call.webhook_status == 200
    assert params["Extra"] == "a b&c" and params["CallSid"] == call.sid


async def test_inline_twiml_over_4000_characters_is_refused(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    too_long = "<Response><Say>" + "a" * 4000 + "</Say></Response>"
    with pytest.raises(TwilioRestException) as caught:
        await twilio_world.sdk(twilio_world.client.calls(call.sid).update, twiml=too_long)
    assert caught.value.status == 400
    assert call.updates == [] and call.status == "in-progress"
