"""Redis lost mid-run: the call in progress finishes, new calls hear busy and the log says why;
once Redis is back the instance takes calls again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest
from _instances import Instances

from patter._events import Event
from patter._twiml import BUSY_MESSAGE
from patter.testing.harness import LoopbackWorld, wait_for
from patter.testing.redis_server import RedisServer

CALLER_SAYS = "Are you still there?"
BOT_SAYS = "Yes, I am still here."


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, to stop and start again."""
    with RedisServer() as server:
        yield server


def logged(caplog: pytest.LogCaptureFixture, start: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(start)]


async def test_redis_lost_mid_call_the_call_finishes_and_new_calls_hear_busy(
    world: LoopbackWorld, instances: Instances, own_redis: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    world.openai.transcripts.append(CALLER_SAYS)
    world.openai.reply_with(BOT_SAYS)
    ended: list[Event] = []
    await instances.serve(1, redis_url=own_redis.url, on_call_end=ended.append)
    live = await world.call_in()
    assert live.phone is not None
    await live.phone.wait_for_heard(0.5, timeout=20)
    await live.phone.wait_until_quiet(quiet_s=0.6, timeout=20)

    own_redis.stop()
    refused = await world.call_in(from_="+15550009999")
    await refused.wait_ended(timeout=10)
    assert refused.said == [BUSY_MESSAGE] and refused.phone is None
    assert logged(caplog, "redis unreachable: calls in progress go on")
    busy = logged(caplog, "redis unreachable: answering busy")
    assert [getattr(r, "call_sid", None) for r in busy] == [refused.sid]

    heard = live.phone.heard_voiced_s
    live.phone.say_text(CALLER_SAYS)
    await live.phone.wait_for_heard(heard + 0.5, timeout=20)
    assert world.openai.spoken[-1] == BOT_SAYS
    await live.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)
    await asyncio.sleep(0.3)  # a second on_call_end would arrive here
    assert [e["call_sid"] for e in ended] == [live.sid]

    own_redis.start()
    await wait_for(lambda: bool(logged(caplog, "redis reachable again")), timeout=20)
    again = await world.call_in(from_="+15550008888")
    assert again.phone is not None
    await again.phone.wait_for_heard(0.5, timeout=20)
