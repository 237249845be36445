"""The call registry: one entry per CallSid, found by every webhook, ending each call once."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from twilio.request_validator import RequestValidator

from patter._call_state import CallInfo, CallOptions
from patter._callbacks import Callbacks
from patter._calls import CallEntry, InMemoryCallRegistry
from patter._events import Event
from patter._server import STATUS_PATH, PatterServer
from patter.testing.harness import LoopbackWorld

CALLEE = "+15550009876"


def new_call_sid() -> str:
    return "CA" + secrets.token_hex(16)


def placed_entry(world: LoopbackWorld, call_sid: str, ended: list[Event]) -> CallEntry:
    """The entry of an outbound call this server placed, reporting its end into ``ended``."""
    phone = world.patter()
    return CallEntry(
        info=CallInfo(call_sid, phone.phone_number, CALLEE, "outbound"),
        agent=phone.agent("You are a test bot."),
        callbacks=Callbacks(on_call_end=ended.append),
        options=CallOptions(hold_music_url="https://example.com/hold.wav", caller_id=CALLEE),
        placed=True,
    )


async def post_status(world: LoopbackWorld, server: PatterServer, call_sid: str,
                      status: str) -> int:
    """Post a signed status callback to the server; returns the HTTP status."""
    params = {"AccountSid": world.twilio.account_sid, "CallSid": call_sid, "CallStatus": status}
    signature = RequestValidator(world.twilio.auth_token).compute_signature(
        f"{world.public_url}{STATUS_PATH}", params
    )
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.post(STATUS_PATH, data=params,
                                     headers={"x-twilio-signature": signature})
    return response.status_code


async def test_one_entry_is_kept_per_call_sid(world: LoopbackWorld) -> None:
    registry = InMemoryCallRegistry()
    call_sid = new_call_sid()
    first = placed_entry(world, call_sid, [])

    assert await registry.add(first) is first
    assert await registry.add(placed_entry(world, call_sid, [])) is first
    assert await registry.entries() == [first]
    assert await registry.get(call_sid) is first


async def test_a_stream_claims_its_call_once_and_an_unknown_call_not_at_all(
    world: LoopbackWorld,
) -> None:
    registry = InMemoryCallRegistry()
    entry = await registry.add(placed_entry(world, new_call_sid(), []))

    assert await registry.claim_stream(entry.call_sid)
    assert not await registry.claim_stream(entry.call_sid)
    assert not await registry.claim_stream(new_call_sid())
    assert entry.streaming


async def test_a_lookup_while_a_call_is_being_placed_waits_for_its_entry(
    world: LoopbackWorld,
) -> None:
    registry = InMemoryCallRegistry()
    call_sid = new_call_sid()
    async with registry.registering():
        lookup = asyncio.ensure_future(registry.get(call_sid))
        await asyncio.sleep(0)
        entry = await registry.add(placed_entry(world, call_sid, []))
        assert not lookup.done()

    assert await lookup is entry


async def test_on_call_end_is_delivered_once_when_a_never_streamed_call_ends(
    world: LoopbackWorld,
) -> None:
    ended: list[Event] = []
    entry = placed_entry(world, new_call_sid(), ended)
    entry.status_reported("ringing")

    await entry.end_unconnected("no-answer")
    await entry.end_unconnected("shutdown")
    await entry.end(entry.event(ended_by="caller"))

    assert len(ended) == 1
    assert ended[0]["ended_by"] == "no-answer" and ended[0]["status"] == "no-answer"
    assert ended[0]["history"] == [] and ended[0]["voicemail_left"] is False
    assert await entry.wait_end() is ended[0]
    assert entry.end_delivered


async def test_a_call_ended_at_shutdown_reports_its_last_status(world: LoopbackWorld) -> None:
    ended: list[Event] = []
    entry = placed_entry(world, new_call_sid(), ended)
    entry.status_reported("ringing")
    entry.verdict_reported("machine_start")

    await entry.end_unconnected("shutdown")

    assert ended[0]["ended_by"] == "shutdown" and ended[0]["status"] == "ringing"
    assert ended[0]["answered_by"] == "machine_start"


async def test_a_connected_placed_call_ends_with_what_twilio_reported(
    world: LoopbackWorld,
) -> None:
    entry = placed_entry(world, new_call_sid(), [])
    entry.verdict_reported("machine_end_beep")
    entry.record_voicemail_left(True)
    url = f"{world.twilio.base_url}/RE0123"
    entry.recording_started("RE0123", url)

    assert entry.end_fields() == {
        "status": "completed",
        "answered_by": "machine_end_beep",
        "voicemail_left": True,
        "recording": {"sid": "RE0123", "url": url,
                      "status": "in-progress", "duration": None},
    }


async def test_a_recording_status_that_came_first_is_not_overwritten_by_the_start(
    world: LoopbackWorld,
) -> None:
    entry = placed_entry(world, new_call_sid(), [])
    final = {"sid": "RE0123", "url": "u", "status": "completed", "duration": 4}
    entry.recording_reported(final, final=True)

    entry.recording_started("RE0123", "u")

    assert entry.recording == final
    assert not entry.awaiting_recording


async def test_only_the_first_final_verdict_counts(world: LoopbackWorld) -> None:
    entry = placed_entry(world, new_call_sid(), [])

    entry.verdict_reported("machine_start")
    entry.verdict_reported("human")
    entry.verdict_reported("machine_end_beep")

    assert entry.answered_by == "human"


async def test_ended_calls_kept_for_their_recording_are_dropped_oldest_first(
    world: LoopbackWorld,
) -> None:
    registry = InMemoryCallRegistry(max_ended=1)
    old, recent = [await registry.add(placed_entry(world, new_call_sid(), [])) for _ in "ab"]
    live = placed_entry(world, new_call_sid(), [])
    await old.end_unconnected("completed")
    await recent.end_unconnected("completed")

    await registry.add(live)

    assert await registry.entries() == [recent, live]


async def test_a_status_callback_for_an_unknown_call_is_ignored(world: LoopbackWorld) -> None:
    server = world.in_process_server()

    assert await post_status(world, server, new_call_sid(), "completed") == 204
    assert await server.registry.entries() == []


async def test_a_final_status_ends_a_placed_call_that_never_streamed_once(
    world: LoopbackWorld,
) -> None:
    server = world.in_process_server()
    ended: list[Event] = []
    entry = await server.registry.add(placed_entry(world, new_call_sid(), ended))

    assert await post_status(world, server, entry.call_sid, "ringing") == 204
    assert not ended
    assert await post_status(world, server, entry.call_sid, "busy") == 204
    assert await post_status(world, server, entry.call_sid, "completed") == 204

    assert [e["ended_by"] for e in ended] == ["busy"]
    assert await server.registry.get(entry.call_sid) is None


async def test_a_final_status_leaves_a_streaming_call_to_its_session(
    world: LoopbackWorld,
) -> None:
    server = world.in_process_server()
    ended: list[Event] = []
    entry = await server.registry.add(placed_entry(world, new_call_sid(), ended))
    assert await server.registry.claim_stream(entry.call_sid)

    assert await post_status(world, server, entry.call_sid, "completed") == 204

    assert ended == [] and entry.status == "completed"
    assert await server.registry.get(entry.call_sid) is entry


async def test_an_answered_call_whose_session_never_started_ends_once_as_an_error(
    world: LoopbackWorld,
) -> None:
    ended: list[Event] = []
    phone = world.patter()
    entry = CallEntry(
        info=CallInfo(new_call_sid(), "+15550001234", phone.phone_number, "inbound"),
        agent=phone.agent("You are a test bot."),
        callbacks=Callbacks(on_call_end=ended.append),
        options=CallOptions(hold_music_url="https://example.com/hold.wav", caller_id=CALLEE),
    )

    await entry.end_unconnected("error")
    await entry.end_unconnected("error")

    assert len(ended) == 1
    assert ended[0]["ended_by"] == "error" and ended[0]["direction"] == "inbound"
    assert "status" not in ended[0] and "voicemail_left" not in ended[0]
