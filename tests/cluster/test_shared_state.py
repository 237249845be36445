"""What the instances share through Redis: the cap on calls, single-use tokens, live calls."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET

import pytest
from _instances import Instances, eventually

from patter._call_state import CallInfo, CallOptions
from patter._callbacks import Callbacks
from patter._calls import CallEntry
from patter._cluster import Cluster
from patter._events import Event
from patter._redis_link import RedisLink
from patter._twiml import BUSY_MESSAGE
from patter.testing.harness import LoopbackWorld, wait_for
from patter.testing.phone import SimulatedPhone


def stream_token(twiml: str | None) -> str:
    """The media token in the ``<Stream>`` of ``twiml``."""
    root = ET.fromstring(twiml or "")
    return next(p.get("value", "") for p in root.iter("Parameter") if p.get("name") == "token")


async def test_max_calls_is_the_total_of_every_instance(
    world: LoopbackWorld, instances: Instances
) -> None:
    ended: list[Event] = []
    a, b = await instances.serve(2, max_calls=1, on_call_end=ended.append)
    live = await world.call_in()
    assert live.phone is not None
    await live.phone.wait_for_heard(0.5, timeout=20)

    instances.route_to(b)  # B has no call of its own, but the cluster's one line is taken
    extra = await world.call_in(from_="+15550009999")
    await extra.wait_ended(timeout=10)
    assert extra.said == [BUSY_MESSAGE] and extra.phone is None

    await live.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)
    freed = await world.call_in(from_="+15550008888")
    assert freed.phone is not None
    await freed.phone.wait_for_heard(0.5, timeout=20)


async def test_a_media_token_replayed_on_another_instance_is_refused(
    world: LoopbackWorld, instances: Instances, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = await instances.serve(2)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.5, timeout=20)

    replay = SimulatedPhone(
        f"ws://127.0.0.1:{b.port}/twilio/media",
        custom_parameters={"token": stream_token(call.twiml)},
        account_sid=world.twilio.account_sid,
        call_sid=call.sid,
    )
    await replay.start()
    try:
        await replay.wait_closed(timeout=15)
        assert replay.closed_by_server and replay.close_code == 1008
        assert replay.received_of("media") == []
    finally:
        await replay.close()
    assert call.phone.is_open
    refusals = [r for r in caplog.records if r.getMessage() == "media stream refused"]
    assert [getattr(r, "reason", "") for r in refusals] == ["token already used"]


async def test_a_crashed_instances_calls_and_lines_expire(
    world: LoopbackWorld, redis_url: str
) -> None:
    call_sid, other_sid = ("CA" + secrets.token_hex(16) for _ in "ab")
    phone = world.patter()
    held = CallEntry(
        info=CallInfo(call_sid, "+15557654321", phone.phone_number, "inbound"),
        agent=phone.agent("You are a test bot."),
        callbacks=Callbacks(),
        options=CallOptions(hold_music_url="https://example.com/hold.wav", caller_id=""),
        streaming=True,
    )

    async def held_here() -> list[CallEntry]:
        return [held]

    async def nothing_forwarded(kind: str, form: dict[str, str]) -> None:
        raise AssertionError("no callback is forwarded in this test")

    # Lines and records last 0.5 s unless a heartbeat renews them.
    crashing = Cluster(RedisLink(redis_url), instance_id="crashing", token_ttl_s=0.5,
                       heartbeat_s=0.05, ttl_s=0.5)
    survivor = Cluster(RedisLink(redis_url), instance_id="survivor")
    await survivor.link.connect()
    await crashing.start(nothing_forwarded, held_here)
    await crashing.claim(call_sid)
    assert await crashing.admit(call_sid, max_calls=1)

    beats = crashing.beats
    await wait_for(lambda: crashing.beats >= beats + 20, timeout=10)  # 1 s of heartbeats
    assert await survivor.owner_of(call_sid) == "crashing"
    assert not await survivor.admit(other_sid, max_calls=1)

    await crashing.close()  # no more heartbeats and nothing cleaned up, as after a crash
    await eventually(lambda: survivor.owner_of(call_sid), None)
    assert await survivor.admit(other_sid, max_calls=1)
    await survivor.close()
