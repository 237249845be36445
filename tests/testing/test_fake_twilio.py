"""FakeTwilio against the real ``twilio`` SDK and a small signature-checking voice application."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from patter.testing import FakeTwilio, Fault, OutboundScript
from patter.testing._server import LoopbackServer
from patter.testing.audio import best_match, mulaw_to_pcm, pcm_to_mulaw, synthesize_speech

OUR_NUMBER = "+15550001234"
CALLER = "+15557654321"
PUBLIC = "https://agent.example.com"
STREAM_TWIML = (
    '<Response><Connect><Stream url="wss://agent.example.com/media">'
    '<Parameter name="token" value="per-call-secret"/></Stream></Connect>'
    "<Say>Goodbye</Say><Hangup/></Response>"
)


class Stream:
    """The application's side of one media stream."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.done = asyncio.Event()
        self._change = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                self.messages.append(json.loads(await self.ws.receive_text()))
                self._change.set()
                self._change = asyncio.Event()
        except WebSocketDisconnect:
            self.done.set()
            self._change.set()

    def of(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["event"] == event]

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not predicate():
                await self._change.wait()

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(message))


class VoiceApp:
    """A voice application as a Patter user deploys it: every request's signature is checked."""

    def __init__(self, auth_token: str) -> None:
        self.validator = RequestValidator(auth_token)
        self.twiml = {"voice": STREAM_TWIML, "twiml": STREAM_TWIML}
        self.hooks: dict[str, list[tuple[dict[str, str], bool]]] = {}
        self.stream_signature_ok: list[bool] = []
        self.streams: asyncio.Queue[Stream] = asyncio.Queue()
        self.app = FastAPI()

        @self.app.api_route("/{hook}", methods=["GET", "POST"])
        async def hook(hook: str, request: Request) -> Response:
            signature = request.headers.get("x-twilio-signature", "")
            if request.method == "GET":
                params = dict(request.query_params)
                valid = self.validator.validate(f"{PUBLIC}/{hook}?{request.url.query}", {},
                                                signature)
            else:
                params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
                valid = self.validator.validate(f"{PUBLIC}/{hook}", params, signature)
            self.hooks.setdefault(hook, []).append((params, valid))
            if not valid:
                return Response(status_code=403)
            if hook in self.twiml:
                return Response(self.twiml[hook], media_type="application/xml")
            return Response(status_code=204)

        @self.app.websocket("/media")
        async def media(ws: WebSocket) -> None:
            signature = ws.headers.get("x-twilio-signature", "")
            self.stream_signature_ok.append(
                self.validator.validate("wss://agent.example.com/media", {}, signature)
            )
            await ws.accept()
            stream = Stream(ws)
            await self.streams.put(stream)
            await stream.run()

    async def next_stream(self) -> Stream:
        return await asyncio.wait_for(self.streams.get(), timeout=10)


@dataclass
class World:
    fake: FakeTwilio
    app: VoiceApp
    client: Client

    async def sdk(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking SDK call off the event loop the fakes run on."""
        return await asyncio.to_thread(fn, *args, **kwargs)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with FakeTwilio(numbers=[OUR_NUMBER]) as fake:
        app = VoiceApp(fake.auth_token)
        async with LoopbackServer(app.app) as server:
            fake.route(PUBLIC, server.url)
            client = Client(fake.account_sid, fake.auth_token)
            client.api.base_url = fake.base_url
            fake.numbers[OUR_NUMBER].voice_url = f"{PUBLIC}/voice"
            yield World(fake, app, client)


async def test_the_sdk_lists_and_configures_numbers_on_the_fake(world: World) -> None:
    numbers = await world.sdk(world.client.incoming_phone_numbers.list, phone_number=OUR_NUMBER)
    assert [n.phone_number for n in numbers] == [OUR_NUMBER]
    updated = await world.sdk(
        world.client.incoming_phone_numbers(numbers[0].sid).update,
        voice_url=f"{PUBLIC}/voice?v=2", voice_method="POST", status_callback=f"{PUBLIC}/status",
    )
    assert updated.voice_url == f"{PUBLIC}/voice?v=2"
    assert world.fake.numbers[OUR_NUMBER].status_callback == f"{PUBLIC}/status"
    assert world.fake.requests[-1].params["VoiceMethod"] == "POST"
    assert await world.sdk(world.client.incoming_phone_numbers.list, phone_number="+1999") == []


async def test_the_sdk_is_refused_with_a_wrong_token(world: World) -> None:
    intruder = Client(world.fake.account_sid, "wrong-token")
    intruder.api.base_url = world.fake.base_url
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(intruder.calls.create, to=CALLER, from_=OUR_NUMBER, url=PUBLIC)
    assert (caught.value.status, caught.value.code) == (401, 20003)
    assert world.fake.calls == {}
    assert not world.fake.requests[-1].authorized


async def test_an_inbound_call_is_signed_and_streams_audio_both_ways(world: World) -> None:
    call = await world.fake.place_inbound_call(from_=CALLER, to=OUR_NUMBER)
    (params, valid), = world.app.hooks["voice"]
    assert valid and call.webhook_status == 200
    assert params["Direction"] == "inbound" and params["CallStatus"] == "ringing"
    assert (params["From"], params["To"], params["CallSid"]) == (CALLER, OUR_NUMBER, call.sid)
    stream = await world.app.next_stream()
    assert world.app.stream_signature_ok == [True]
    await stream.wait_until(lambda: bool(stream.of("start")))
    start = stream.of("start")[0]["start"]
    assert start["customParameters"] == {"token": "per-call-secret"}
    assert (start["callSid"], start["accountSid"]) == (call.sid, world.fake.account_sid)
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


async def test_a_forged_signature_is_refused_by_the_application(world: World) -> None:
    call = await world.fake.place_inbound_call(signature="Zm9yZ2Vk")
    assert call.webhook_status == 403
    assert call.phone is None and call.status == "completed"
    assert world.app.hooks["voice"][0][1] is False
    signed_elsewhere = await world.fake.place_inbound_call(sign_url="https://evil.example/voice")
    unsigned = await world.fake.place_inbound_call(unsigned=True)
    assert signed_elsewhere.webhook_status == unsigned.webhook_status == 403


async def test_the_stream_ending_from_the_server_runs_the_next_verb(world: World) -> None:
    call = await world.fake.place_inbound_call()
    stream = await world.app.next_stream()
    await stream.ws.close()
    await call.wait_ended()
    assert call.said == ["Goodbye"]
    assert call.status == "completed"
    assert call.phone is not None and call.phone.closed_by_server


async def test_a_transfer_by_rest_update_stops_the_stream_and_dials(world: World) -> None:
    call = await world.fake.place_inbound_call()
    stream = await world.app.next_stream()
    transfer = (
        '<Response><Play>https://cdn.example.com/hold.mp3</Play>'
        f'<Dial callerId="{OUR_NUMBER}">+15559998888</Dial></Response>'
    )
    updated = await world.sdk(world.client.calls(call.sid).update, twiml=transfer)
    assert updated.sid == call.sid
    await stream.wait_until(lambda: stream.done.is_set())
    assert stream.messages[-1]["event"] == "stop"
    await call.wait_ended()
    assert call.played == ["https://cdn.example.com/hold.mp3"]
    assert [(d.number, d.caller_id) for d in call.dials] == [("+15559998888", OUR_NUMBER)]
    assert call.said == [] and call.updates[0]["Twiml"] == transfer
    assert call.phone is not None and not call.phone.closed_by_server


async def test_the_caller_hanging_up_sends_stop_and_completes_the_call(world: World) -> None:
    world.fake.numbers[OUR_NUMBER].status_callback = f"{PUBLIC}/status"
    call = await world.fake.place_inbound_call()
    stream = await world.app.next_stream()
    await call.hang_up()
    assert call.status == "completed" and call.ended.is_set()
    await stream.wait_until(lambda: stream.done.is_set())
    assert stream.of("stop")[0]["stop"]["callSid"] == call.sid
    (params, valid), = world.app.hooks["status"]
    assert valid and params["CallStatus"] == "completed"
    assert call.said == []


async def test_an_ended_call_answers_20404_to_updates(world: World) -> None:
    call = await world.fake.place_inbound_call()
    await world.sdk(world.client.calls(call.sid).update, status="completed")
    assert call.status == "completed"
    await call.wait_ended()
    with pytest.raises(TwilioRestException) as caught:
        await world.sdk(world.client.calls(call.sid).update, status="completed")
    assert (caught.value.status, caught.value.code) == (404, 20404)
    fetched = await world.sdk(world.client.calls(call.sid).fetch)
    assert fetched.status == "completed"


async def test_an_outbound_call_reports_progress_and_runs_its_twiml(world: World) -> None:
    created = await world.sdk(
        world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        status_callback=f"{PUBLIC}/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert created.status == "queued" and created.direction == "outbound-api"
    call = await world.fake.wait_for_call()
    assert call.sid == created.sid
    phone = await call.wait_stream()
    stream = await world.app.next_stream()
    await world.sdk(world.client.calls(call.sid).update, status="completed")
    await call.wait_ended()
    await stream.wait_until(lambda: stream.done.is_set())
    statuses = [p["CallStatus"] for p, valid in world.app.hooks["status"] if valid]
    assert statuses == ["initiated", "ringing", "in-progress", "completed"]
    assert world.app.hooks["twiml"][0][0]["Direction"] == "outbound-api"
    assert not phone.is_open


async def test_async_amd_posts_the_verdict_after_the_call_connects(world: World) -> None:
    world.fake.next_outbound = OutboundScript(answered_by="machine_end_beep", amd_delay_s=0.05)
    created = await world.sdk(
        world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        machine_detection="DetectMessageEnd", async_amd="true",
        async_amd_status_callback=f"{PUBLIC}/amd",
    )
    call = await world.fake.wait_for_call()
    await world.fake.wait_until(lambda: "amd" in world.app.hooks)
    (params, valid), = world.app.hooks["amd"]
    assert valid and params["AnsweredBy"] == "machine_end_beep"
    assert params["CallSid"] == created.sid and params["MachineDetectionDuration"] == "50"
    assert call.answered_by == "machine_end_beep"


async def test_a_busy_callee_ends_the_call_as_busy(world: World) -> None:
    world.fake.next_outbound = OutboundScript(answer="busy")
    await world.sdk(
        world.client.calls.create, to=CALLER, from_=OUR_NUMBER, url=f"{PUBLIC}/twiml",
        status_callback=f"{PUBLIC}/status",
    )
    call = await world.fake.wait_for_call()
    await call.wait_ended()
    assert call.status == "busy" and call.phone is None and "twiml" not in world.app.hooks
    assert [p["CallStatus"] for p, _ in world.app.hooks["status"]] == ["busy"]


async def test_a_recording_reports_completed_when_the_call_ends(world: World) -> None:
    call = await world.fake.place_inbound_call()
    recording = await world.sdk(
        world.client.calls(call.sid).recordings.create,
        recording_channels="dual", recording_status_callback=f"{PUBLIC}/recording",
    )
    assert recording.sid.startswith("RE") and recording.channels == 2
    await call.hang_up()
    (params, valid), = world.app.hooks["recording"]
    assert valid and params["RecordingStatus"] == "completed"
    assert (params["RecordingSid"], params["CallSid"]) == (recording.sid, call.sid)
    assert params["RecordingUrl"].endswith(recording.sid) and "RecordingDuration" in params


async def test_failing_recordings_answer_a_twilio_error(world: World) -> None:
    world.fake.fail_recordings = True
    call = await world.fake.place_inbound_call()
    with pytest.raises(TwilioRestException) as caught:
        await world.sdk(world.client.calls(call.sid).recordings.create)
    assert caught.value.status == 400
    assert call.recordings == []


async def test_the_async_sdk_client_works_against_the_fake(world: World) -> None:
    http = AsyncTwilioHttpClient()
    client = Client(world.fake.account_sid, world.fake.auth_token, http_client=http)
    client.api.base_url = world.fake.base_url
    try:
        created = await client.calls.create_async(
            to=CALLER, from_=OUR_NUMBER, twiml="<Response><Reject/></Response>",
            status_callback=f"{PUBLIC}/status", status_callback_event=["ringing", "completed"],
        )
        call = world.fake.calls[created.sid]
        await call.wait_ended()
        fetched = await client.calls(created.sid).fetch_async()
    finally:
        await http.close()
    assert fetched.status == "no-answer" and call.rejected == "rejected"
    assert [p["CallStatus"] for p, _ in world.app.hooks["status"]] == ["ringing", "no-answer"]


async def test_a_stream_url_that_is_not_wss_is_refused_like_twilio(world: World) -> None:
    world.app.twiml["voice"] = (
        '<Response><Connect><Stream url="ws://agent.example.com/media"/></Connect>'
        "<Hangup/></Response>"
    )
    call = await world.fake.place_inbound_call()
    await call.wait_ended()
    assert call.phone is None and "wss://" in call.stream_errors[0]
    with pytest.raises(RuntimeError, match="stream errors"):
        await call.wait_stream()


async def test_a_rest_update_with_a_url_fetches_signed_twiml_and_follows_redirects(
    world: World,
) -> None:
    world.app.twiml["menu"] = (
        "<Response><Say>Menu</Say><Redirect>https://agent.example.com/bye</Redirect></Response>"
    )
    world.app.twiml["bye"] = "<Response><Say>Bye</Say><Hangup/></Response>"
    call = await world.fake.place_inbound_call()
    stream = await world.app.next_stream()
    await world.sdk(world.client.calls(call.sid).update, url=f"{PUBLIC}/menu")
    await call.wait_ended()
    assert stream.of("stop") and call.said == ["Menu", "Bye"]
    assert [valid for _, valid in world.app.hooks["menu"] + world.app.hooks["bye"]] == [True] * 2
    assert world.app.hooks["bye"][0][0]["CallStatus"] == "in-progress"
    assert len(call.twiml_history) == 3


async def test_sync_amd_puts_answered_by_on_the_twiml_request(world: World) -> None:
    world.fake.next_outbound = OutboundScript(answered_by="human", amd_delay_s=0.01)
    world.app.twiml["twiml"] = "<Response><Hangup/></Response>"
    await world.sdk(world.client.calls.create, to=CALLER, from_=OUR_NUMBER,
                    url=f"{PUBLIC}/twiml", machine_detection="Enable")
    call = await world.fake.wait_for_call()
    await call.wait_ended()
    (params, valid), = world.app.hooks["twiml"]
    assert valid and params["AnsweredBy"] == "human"


async def test_a_get_voice_webhook_is_signed_on_its_full_url(world: World) -> None:
    world.fake.numbers[OUR_NUMBER].voice_method = "GET"
    call = await world.fake.place_inbound_call(params={"Extra": "a b&c"})
    (params, valid), = world.app.hooks["voice"]
    assert valid and call.webhook_status == 200
    assert params["Extra"] == "a b&c" and params["CallSid"] == call.sid


async def test_inline_twiml_over_4000_characters_is_refused(world: World) -> None:
    call = await world.fake.place_inbound_call()
    too_long = "<Response><Say>" + "a" * 4000 + "</Say></Response>"
    with pytest.raises(TwilioRestException) as caught:
        await world.sdk(world.client.calls(call.sid).update, twiml=too_long)
    assert caught.value.status == 400
    assert call.updates == [] and call.status == "in-progress"


# ----- injected faults ------------------------------------------------------------------


async def test_a_429_fault_answers_twilios_error_with_retry_after(world: World) -> None:
    call = await world.fake.place_inbound_call()
    world.fake.faults.add("calls.redirect", Fault.http(429, retry_after_s=1))
    http = AsyncTwilioHttpClient()
    client = Client(world.fake.account_sid, world.fake.auth_token, http_client=http)
    client.api.base_url = world.fake.base_url
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
    assert [f.request for f in world.fake.faults.fired] == ["calls.redirect"]


async def test_a_fault_can_carry_a_twilio_error_code(world: World) -> None:
    call = await world.fake.place_inbound_call()
    world.fake.faults.add("calls.hang_up", Fault.http(404, code=20404))
    with pytest.raises(TwilioRestException) as caught:
        await world.sdk(world.client.calls(call.sid).update, status="completed")
    assert (caught.value.status, caught.value.code) == (404, 20404)
    assert call.status == "in-progress"


async def test_a_hanging_request_is_answered_only_when_the_fake_closes(world: World) -> None:
    world.fake.faults.add("calls.create", Fault.hang())
    http = AsyncTwilioHttpClient()
    client = Client(world.fake.account_sid, world.fake.auth_token, http_client=http)
    client.api.base_url = world.fake.base_url
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await client.calls.create_async(to=CALLER, from_=OUR_NUMBER,
                                                twiml="<Response><Hangup/></Response>")
    finally:
        await http.close()
    assert world.fake.calls == {}
    assert [f.fault.kind for f in world.fake.faults.fired] == ["hang"]
