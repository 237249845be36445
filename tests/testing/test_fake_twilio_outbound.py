"""FakeTwilio against the real ``twilio`` SDK: outbound calls, AMD, recordings and injected
faults."""

from __future__ import annotations

import asyncio

import pytest
from _fake_twilio_app import (
    CALLER,
    OUR_NUMBER,
    PUBLIC,
    World,
)
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from patter.testing import Fault, OutboundScript


async def test_an_outbound_call_reports_progress_and_runs_its_twiml(twilio_world: World) -> None:
    created = await twilio_world.sdk(
        twilio_world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        status_callback=f"{PUBLIC}/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert created.status == "queued" and created.direction == "outbound-api"
    call = await twilio_world.fake.wait_for_call()
    assert call.sid == created.sid
    phone = await call.wait_stream()
    stream = await twilio_world.app.next_stream()
    await twilio_world.sdk(twilio_world.client.calls(call.sid).update, status="completed")
    await call.wait_ended()
    await stream.wait_until(lambda: stream.done.is_set())
    statuses = [p["CallStatus"] for p, valid in twilio_world.app.hooks["status"] if valid]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert twilio_world.app.hooks["twiml"][0][0]["Direction"] == "outbound-api"
    assert not phone.is_open


async def test_async_amd_posts_the_verdict_after_the_call_connects(twilio_world: World) -> None:
    twilio_world.fake.next_outbound = OutboundScript(
        answered_by="machine_end_beep", amd_delay_s=0.05
    )
    created = await twilio_world.sdk(
        twilio_world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        machine_detection="DetectMessageEnd", async_amd="true",
        async_amd_status_callback=f"{PUBLIC}/amd",
    )
    call = await twilio_world.fake.wait_for_call()
    await twilio_world.fake.wait_until(lambda: "amd" in twilio_world.app.hooks)
    (params, valid), = twilio_world.app.hooks["amd"]
    assert valid and params["AnsweredBy"] == "machine_end_beep"
    assert params["CallSid"] == created.sid and params["MachineDetectionDuration"] == "50"
    assert call.answered_by == "machine_end_beep"


async def test_a_busy_callee_ends_the_call_as_busy(twilio_world: World) -> None:
    twilio_world.fake.next_outbound = OutboundScript(answer="busy")
    await twilio_world.sdk(
        twilio_world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        status_callback=f"{PUBLIC}/status",
    )
    call = await twilio_world.fake.wait_for_call()
    await call.wait_ended()
    assert call.status == "busy" and call.phone is None and "twiml" not in twilio_world.app.hooks
    assert [p["CallStatus"] for p, _ in twilio_world.app.hooks["status"]] == ["busy"]


async def test_a_recording_reports_completed_when_the_call_ends(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    recording = await twilio_world.sdk(
        twilio_world.client.calls(call.sid).recordings.create,
        recording_channels="dual", recording_status_callback=f"{PUBLIC}/recording",
    )
    assert recording.sid.startswith("RE") and recording.channels == 2
    await call.hang_up()
    (params, valid), = twilio_world.app.hooks["recording"]
    assert valid and params["RecordingStatus"] == "completed"
    assert (params["RecordingSid"], params["CallSid"]) == (recording.sid, call.sid)
    assert params["RecordingUrl"].endswith(recording.sid) and "RecordingDuration" in params


async def test_failing_recordings_answer_a_twilio_error(twilio_world: World) -> None:
    twilio_world.fake.fail_recordings = True
    call = await twilio_world.fake.place_inbound_call()
    with pytest.raises(TwilioRestException) as caught:
        await twilio_world.sdk(twilio_world.client.calls(call.sid).recordings.create)
    assert caught.value.status == 400
    assert call.recordings == []


async def test_the_async_sdk_client_works_against_the_fake(twilio_world: World) -> None:
    http = AsyncTwilioHttpClient()
    client = Client(twilio_world.fake.account_sid, twilio_world.fake.auth_token, http_client=http)
    client.api.base_url = twilio_world.fake.base_url
    try:
        created = await client.calls.create_async(
            to=CALLER, from_=OUR_NUMBER, twiml="<Response><Reject/></Response>",
            status_callback=f"{PUBLIC}/status", status_callback_event=["ringing", "completed"],
        )
        call = twilio_world.fake.calls[created.sid]
        await call.wait_ended()
        fetched = await client.calls(created.sid).fetch_async()
    finally:
        await http.close()
    assert fetched.status == "no-answer" and call.rejected == "rejected"
    statuses = [p["CallStatus"] for p, _ in twilio_world.app.hooks["status"]]
    assert statuses == ["ringing", "no-answer"]


# ----- injected faults ------------------------------------------------------------------


async def test_a_429_fault_answers_twilios_error_with_retry_after(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    twilio_world.fake.faults.add("calls.redirect", Fault.http(429, retry_after_s=1))
    http = AsyncTwilioHttpClient()
    client = Client(twilio_world.fake.account_sid, twilio_world.fake.auth_token, http_client=http)
    client.api.base_url = twilio_world.fake.base_url
    try:
        with pytest.raises(TwilioRestException) as caught:
            await client.calls(call.sid).update_async(twiml="<Response><Hangup/></Response>")
        headers = http._test_only_last_response.headers
        await client.calls(call.sid).update_async(status="completed")  # other kinds unaffected
    finally:
        await http.close()
    assert (caught.value.status, caught.value.code) == (429, 20429)
    assert headers["Retry-After"] == "1"
    assert call.updates == [{"Status": "completed"}]
    assert [f.request for f in twilio_world.fake.faults.fired] == ["calls.redirect"]


async def test_a_fault_can_carry_a_twilio_error_code(twilio_world: World) -> None:
    call = await twilio_world.fake.place_inbound_call()
    twilio_world.fake.faults.add("calls.hang_up", Fault.http(404, code=20404))
    with pytest.raises(TwilioRestException) as caught:
        await twilio_world.sdk(twilio_world.client.calls(call.sid).update, status="completed")
    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert call.status == "in-progress"


async def test_a_hanging_request_is_answered_only_when_the_fake_closes(twilio_world: World) -> None:
    twilio_world.fake.faults.add("calls.create", Fault.hang())
    http = AsyncTwilioHttpClient()
    client = Client(twilio_world.fake.account_sid, twilio_world.fake.auth_token, http_client=http)
    client.api.base_url = twilio_world.fake.base_url
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.calls.create_async(to=CALLER, from_=OUR_NUMBER,
                                                twiml="<Response><Hangup/></Response>")
    finally:
        await http.close()
    assert twilio_world.fake.calls == {}
    assert [f.fault.kind for f in twilio_world.fake.faults.fired] == ["hang"]
