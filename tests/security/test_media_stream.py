"""The media WebSocket: only a stream with its call's fresh token reaches a vendor.

Each refusal is paired with the legitimate stream it was derived from, on the same server,
so that a refusal cannot pass for the wrong reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from _wire import Wire
from websockets.asyncio.client import connect

from patter._events import Event
from patter.testing.harness import LoopbackWorld, wait_for


def tamper(token: str) -> str:
    """``token`` with one character of its MAC changed."""
    last = token[-1]
    return token[:-1] + ("A" if last != "A" else "B")


async def assert_greets(wire: Wire, call_sid: str, parameters: dict[str, str]) -> None:
    """A stream with these parameters is accepted and the caller hears the bot."""
    async with wire.stream(call_sid, parameters) as phone:
        await phone.wait_for_heard(1.0, timeout=20)
        assert phone.is_open


async def assert_refused_then_greets(
    wire: Wire, altered: Callable[[dict[str, str]], dict[str, str]] = dict, **stream_options: Any
) -> None:
    """A stream with ``altered(parameters)`` of a legitimate call is refused before any vendor
    is contacted; the legitimate stream then greets the caller (its token was not spent)."""
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    parameters = await wire.answer(call_sid)
    traffic = wire.vendor_traffic()

    async with wire.stream(call_sid, altered(parameters), **stream_options) as phone:
        await wire.assert_refused(phone, traffic)

    await assert_greets(wire, call_sid, parameters)


async def test_a_stream_without_a_token_is_closed_before_any_vendor(wire: Wire) -> None:
    await assert_refused_then_greets(
        wire, lambda parameters: {k: v for k, v in parameters.items() if k != "token"})


async def test_a_tampered_token_is_refused(wire: Wire) -> None:
    await assert_refused_then_greets(
        wire, lambda parameters: {**parameters, "token": tamper(parameters["token"])})


async def test_another_calls_token_is_refused(wire: Wire) -> None:
    await wire.serve_bot()
    mine, theirs = wire.new_call_sid(), wire.new_call_sid()
    my_parameters = await wire.answer(mine)
    await wire.answer(theirs)
    traffic = wire.vendor_traffic()

    async with wire.stream(theirs, my_parameters) as phone:
        await wire.assert_refused(phone, traffic)

    await assert_greets(wire, mine, my_parameters)


async def test_a_token_works_once_and_a_replay_is_refused(wire: Wire) -> None:
    ended: list[Event] = []
    await wire.serve_bot(on_call_end=ended.append)
    call_sid = wire.new_call_sid()
    parameters = await wire.answer(call_sid)

    await assert_greets(wire, call_sid, parameters)
    await wait_for(lambda: bool(ended), timeout=10)  # the call is over: no "second stream"
    traffic = wire.vendor_traffic()

    async with wire.stream(call_sid, parameters) as replay:
        await wire.assert_refused(replay, traffic)


async def test_a_second_stream_for_a_streaming_call_is_refused_and_the_first_goes_on(
    world: LoopbackWorld, wire: Wire
) -> None:
    world.openai.transcripts.append("Are you still there?")
    world.openai.reply_with("Yes, I am still here.")
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    first_parameters = await wire.answer(call_sid)
    second_parameters = await wire.answer(call_sid)  # Twilio retried: a second fresh token

    async with wire.stream(call_sid, first_parameters) as first:
        await first.wait_for_heard(1.0, timeout=20)
        await first.wait_until_quiet(quiet_s=0.6, timeout=20)
        traffic = wire.vendor_traffic()
        async with wire.stream(call_sid, second_parameters) as second:
            await wire.assert_refused(second, traffic)

        heard = first.heard_voiced_s
        first.say_text("Are you still there?")
        await first.wait_for_heard(heard + 0.5, timeout=20)
        assert world.openai.chat_requests
        assert first.is_open


async def test_of_two_streams_racing_for_one_call_exactly_one_is_accepted(wire: Wire) -> None:
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    tokens = [await wire.answer(call_sid), await wire.answer(call_sid)]

    async with wire.stream(call_sid, tokens[0]) as one, wire.stream(call_sid, tokens[1]) as two:
        await wait_for(lambda: not (one.is_open and two.is_open), timeout=15)
        loser, winner = (one, two) if not one.is_open else (two, one)
        await winner.wait_for_heard(1.0, timeout=20)
        assert loser.close_code == 1008 and loser.received_of("media") == []
        assert winner.is_open


async def test_a_stream_that_sends_no_start_is_closed_after_five_seconds(wire: Wire) -> None:
    await wire.serve_bot()
    traffic = wire.vendor_traffic()

    async with connect(f"ws://127.0.0.1:{wire.world.port}/twilio/media", proxy=None) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await asyncio.sleep(1.0)
        assert ws.close_code is None  # still waiting for `start`
        async with asyncio.timeout(15):
            await ws.wait_closed()

    assert ws.close_code == 1008
    assert wire.vendor_traffic() == traffic


async def test_media_before_start_is_refused(wire: Wire) -> None:
    await assert_refused_then_greets(wire, send_start=False)


async def test_an_oversize_message_closes_the_stream(wire: Wire) -> None:
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    parameters = await wire.answer(call_sid)
    traffic = wire.vendor_traffic()
    padded = {**parameters, "padding": "x" * (70 * 1024)}

    async with wire.stream(call_sid, padded) as phone:
        await phone.wait_closed(timeout=15)
        await asyncio.sleep(0.3)
        assert phone.closed_by_server
        assert phone.received_of("media") == []
        assert wire.vendor_traffic() == traffic

    await assert_greets(wire, call_sid, parameters)  # the oversize start did not spend it


async def test_an_oversize_message_mid_call_ends_the_call(wire: Wire) -> None:
    await wire.serve_bot()
    call_sid = wire.new_call_sid()
    parameters = await wire.answer(call_sid)

    async with wire.stream(call_sid, parameters) as phone:
        await phone.wait_for_heard(0.5, timeout=20)
        await phone.send_raw(json.dumps({"event": "mark", "mark": {"name": "x" * (70 * 1024)}}))
        await phone.wait_closed(timeout=15)
        assert phone.closed_by_server


async def test_binary_or_non_json_frames_before_start_are_refused(wire: Wire) -> None:
    await wire.serve_bot()
    traffic = wire.vendor_traffic()

    for frame in (b"\x00\x01binary", "this is not json", "[1, 2, 3]"):
        async with connect(f"ws://127.0.0.1:{wire.world.port}/twilio/media", proxy=None) as ws:
            await ws.send(frame)
            async with asyncio.timeout(15):
                await ws.wait_closed()
        assert ws.close_code == 1008, frame

    await asyncio.sleep(0.3)
    assert wire.vendor_traffic() == traffic


async def test_a_signed_call_through_the_same_server_works_after_every_attack(
    world: LoopbackWorld, wire: Wire
) -> None:
    """The refusals above come from checks, not from a server that accepts nothing."""
    world.openai.transcripts.append("I would like a table for two.")
    world.openai.reply_with("A table for two, certainly.")
    await wire.serve_bot()
    victim = wire.new_call_sid()
    stolen = await wire.answer(victim)
    for attempt in ({}, {"token": tamper(stolen["token"])}):
        async with wire.stream(wire.new_call_sid(), {**stolen, **attempt}) as phone:
            await phone.wait_closed(timeout=15)

    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(1.0, timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    heard = call.phone.heard_voiced_s
    call.phone.say_text("I would like a table for two.")
    await call.phone.wait_for_heard(heard + 0.5, timeout=20)
    assert world.openai.chat_requests[-1]["messages"][-1]["content"] == (
        "I would like a table for two."
    )
