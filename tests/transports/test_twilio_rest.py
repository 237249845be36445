"""TwilioRest against the fake Twilio, with faults injected into its REST API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from patter.errors import TwilioError
from patter.testing import FakeCall, FakeTwilio, Fault
from patter.transports.twilio_rest import TwilioRest

OUR_NUMBER = "+15550001234"
CALLEE = "+15557654321"
WAITING = '<Response><Pause length="60"/></Response>'
TRANSFER = "<Response><Dial>+15550001111</Dial></Response>"


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[FakeTwilio, TwilioRest]]:
    async with FakeTwilio(numbers=[OUR_NUMBER]) as fake:
        rest = TwilioRest(fake.account_sid, fake.auth_token, base_url=fake.base_url)
        try:
            yield fake, rest
        finally:
            await rest.close()


async def live_call(fake: FakeTwilio, rest: TwilioRest) -> FakeCall:
    sid = await rest.create_call({"to": CALLEE, "from_": OUR_NUMBER, "twiml": WAITING})
    await fake.wait_until(lambda: fake.calls[sid].status == "in-progress")
    return fake.calls[sid]


def updates(fake: FakeTwilio, call: FakeCall) -> list[dict[str, Any]]:
    return [r.params for r in fake.requests if r.path.endswith(f"/Calls/{call.sid}.json")]


async def test_a_hang_up_answered_500_is_tried_again_and_ends_the_call(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    call = await live_call(fake, rest)
    fake.faults.add("calls.hang_up", Fault.http(500))
    assert await rest.hang_up(call.sid) is True
    await call.wait_ended()
    assert call.status == "completed"
    assert [f.fault.status for f in fake.faults.fired] == [500]
    assert [p["Status"] for p in updates(fake, call)] == ["completed", "completed"]


async def test_a_redirect_refused_twice_with_429_goes_through_on_the_third_try(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    call = await live_call(fake, rest)
    fake.faults.add("calls.redirect", Fault.http(429, retry_after_s=0.05), times=2)
    assert await rest.redirect(call.sid, TRANSFER) is True
    assert len(updates(fake, call)) == 3
    assert call.updates == [{"Twiml": TRANSFER}]  # executed once
    assert fake.faults.pending("calls.redirect") == 0


async def test_hanging_up_a_call_already_over_is_not_an_error(
        twilio: tuple[FakeTwilio, TwilioRest], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fake, rest = twilio
    call = await live_call(fake, rest)
    await call.hang_up()
    assert await rest.hang_up(call.sid) is False
    assert await rest.redirect(call.sid, TRANSFER) is False
    assert "call already ended" in caplog.messages
    assert len(updates(fake, call)) == 2  # 20404 is an answer, not something to try again


async def test_a_persistent_500_gives_up_after_three_tries_with_a_clear_error(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    call = await live_call(fake, rest)
    fake.faults.add("calls.hang_up", Fault.http(500), times=10)
    with pytest.raises(TwilioError) as caught:
        await rest.hang_up(call.sid)
    message = str(caught.value)
    assert message.startswith("Twilio REST hang-up failed after 3 tries: HTTP 500 code 20500")
    assert caught.value.status == 500
    assert fake.auth_token not in message
    assert len(fake.faults.fired) == 3 and call.status == "in-progress"


async def test_creating_a_call_is_not_repeated_after_a_500(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    fake.faults.add("calls.create", Fault.http(500))
    with pytest.raises(TwilioError) as caught:
        await rest.create_call({"to": CALLEE, "from_": OUR_NUMBER, "twiml": WAITING})
    assert "call create failed (not tried again" in str(caught.value)
    assert len([r for r in fake.requests if r.path.endswith("/Calls.json")]) == 1
    assert fake.calls == {}


async def test_creating_a_call_refused_with_429_is_tried_again(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    fake.faults.add("calls.create", Fault.http(429))
    sid = await rest.create_call({"to": CALLEE, "from_": OUR_NUMBER, "twiml": WAITING})
    assert list(fake.calls) == [sid]
    assert len([r for r in fake.requests if r.path.endswith("/Calls.json")]) == 2


async def test_a_recording_start_answered_503_is_tried_again(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, rest = twilio
    call = await live_call(fake, rest)
    fake.faults.add("recordings.create", Fault.http(503))
    sid, url = await rest.start_recording(call.sid, "https://agent.example.com/recording")
    assert [r.sid for r in call.recordings] == [sid] and url.endswith(sid)


async def test_a_request_twilio_never_answers_fails_after_the_timeout(
        twilio: tuple[FakeTwilio, TwilioRest]) -> None:
    fake, _ = twilio
    rest = TwilioRest(fake.account_sid, fake.auth_token, base_url=fake.base_url, timeout_s=0.3)
    try:
        call = await live_call(fake, rest)
        fake.faults.add("calls.hang_up", Fault.hang())
        with pytest.raises(TwilioError, match="hang-up failed: no answer within 0.3 s"):
            await rest.hang_up(call.sid)
    finally:
        await rest.close()
