"""Limits: callers over ``max_calls`` hear a busy message; calls end at a maximum length."""

from __future__ import annotations

import asyncio

import httpx
from _wire import Wire
from twilio.request_validator import RequestValidator

from patter._events import Event
from patter._twiml import BUSY_MESSAGE
from patter.testing.harness import LoopbackWorld, wait_for

CALLER_SAYS = "Can I still book a table?"
BOT_SAYS = "Yes, there is room at eight."


async def test_over_max_calls_the_extra_caller_hears_busy_and_the_live_call_goes_on(
    world: LoopbackWorld, wire: Wire
) -> None:
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with(BOT_SAYS)
    await wire.serve_bot(max_calls=1)
    live = await world.call_in()
    assert live.phone is not None
    await live.phone.wait_for_heard(1.0, timeout=20)
    await live.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    traffic = wire.vendor_traffic()

    extra = await world.call_in(from_="+15550009999")
    await extra.wait_ended(timeout=10)

    assert extra.said == [BUSY_MESSAGE]
    assert extra.phone is None and "<Stream" not in (extra.twiml or "")
    assert extra.status == "completed"
    assert wire.vendor_traffic() == traffic

    heard = live.phone.heard_voiced_s
    live.phone.say_text(CALLER_SAYS)
    await live.phone.wait_for_heard(heard + 0.5, timeout=20)
    assert world.openai.chat_requests[-1]["messages"][-1]["content"] == CALLER_SAYS
    assert world.openai.spoken[-1] == BOT_SAYS
    assert live.phone.is_open and live.status == "in-progress"


async def test_a_line_frees_up_when_the_live_call_ends(world: LoopbackWorld, wire: Wire) -> None:
    ended: list[Event] = []
    await wire.serve_bot(max_calls=1, on_call_end=ended.append)
    first = await world.call_in()
    assert first.phone is not None
    await first.phone.wait_for_heard(0.5, timeout=20)
    await first.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)

    second = await world.call_in()

    assert second.phone is not None
    await second.phone.wait_for_heard(0.5, timeout=20)


async def test_max_call_duration_ends_the_call_once_with_ended_by_max_duration(
    world: LoopbackWorld, wire: Wire
) -> None:
    ended: list[Event] = []
    await wire.serve_bot(max_call_duration_s=3.0, on_call_end=ended.append)

    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(1.0, timeout=20)
    await call.wait_ended(timeout=30)
    await wait_for(lambda: bool(ended), timeout=10)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here

    assert len(ended) == 1
    assert ended[0]["ended_by"] == "max_duration"
    assert ended[0]["call_sid"] == call.sid
    assert {"Status": "completed"}.items() <= call.updates[-1].items()
    assert call.status == "completed"


async def test_an_answered_call_whose_stream_never_comes_frees_its_line_when_the_token_expires(
    world: LoopbackWorld, wire: Wire
) -> None:
    """A signed webhook without a stream must not hold one of the ``max_calls`` lines forever."""
    server = world.in_process_server(token_ttl_s=0.5)
    validator = RequestValidator(world.twilio.auth_token)

    async def ring(call_sid: str) -> str:
        params = wire.call_params(call_sid)
        signature = validator.compute_signature(f"{world.public_url}/twilio/voice", params)
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            response = await client.post("/twilio/voice", data=params,
                                         headers={"x-twilio-signature": signature})
        assert response.status_code == 200
        return response.text

    assert "<Stream" in await ring(wire.new_call_sid())
    assert BUSY_MESSAGE in await ring(wire.new_call_sid())
    await asyncio.sleep(0.6)  # the first call's token has expired; its stream can never start
    assert "<Stream" in await ring(wire.new_call_sid())
