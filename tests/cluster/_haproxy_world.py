"""A loopback world whose public URL reaches three Patter processes through a real HAProxy."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patter.testing.cluster import LocalCluster
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import LoopbackWorld, free_port

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CONFIG = ROOT / "deploy" / "haproxy.cfg"
CALLER_SAYS = "I would like a table for two."
SERVER_SECRET = "cluster-test-secret-0123456789abcdef"
"""The instances' shared PATTER_SERVER_SECRET (a test may mint a media token with it)."""
TIMEOUT_S = 60.0


@asynccontextmanager
async def haproxy_world(*, instances: int = 3,
                        drain_timeout_s: float = 60.0) -> AsyncIterator[tuple[LoopbackWorld,
                                                                              LocalCluster]]:
    """Fakes on loopback, and ``instances`` Patter processes behind HAProxy answering the
    world's public URL; the fake STT hears :data:`CALLER_SAYS` in every upload."""
    async with LoopbackWorld() as world:
        world.port = free_port()  # the balancer's front
        world.twilio.route(world.public_url, f"http://127.0.0.1:{world.port}")
        world.openai.transcriber = lambda _pcm, _rate: CALLER_SAYS

        def command(_instance_id: str, port: int) -> list[str]:
            return [sys.executable, "-P", "-m", "patter.testing._cluster_instance",
                    str(port), str(drain_timeout_s)]

        async with LocalCluster(command, instances=instances, haproxy_config=HAPROXY_CONFIG,
                                env={**world.environment(), "PATTER_SERVER_SECRET": SERVER_SECRET},
                                port=world.port) as cluster:
            yield world, cluster


def events(cluster: LocalCluster, kind: str, call_sid: str | None = None) -> list[dict[str, Any]]:
    """The JSON event lines of ``kind`` every instance printed (for ``call_sid`` if given)."""
    found = [
        json.loads(line) for instance in cluster.instances for line in instance.lines
        if line.startswith("{")
    ]
    return [e for e in found
            if e["event"] == kind and (call_sid is None or e["call_sid"] == call_sid)]


async def wait_for_event(cluster: LocalCluster, kind: str, call_sid: str) -> None:
    """Wait until an instance printed the event ``kind`` of ``call_sid``."""
    await cluster.wait_for_line(
        lambda _instance, line: line.startswith("{") and f'"{kind}"' in line
        and f'"{call_sid}"' in line,
        timeout=TIMEOUT_S,
    )


def stream_instance(call: FakeCall) -> str:
    """The instance id the call's TwiML streams to (the last segment of the stream URL)."""
    twiml = call.twiml or ""
    url = twiml.split('<Stream url="', 1)[1].split('"', 1)[0]
    return url.rsplit("/", 1)[-1]


@dataclass
class Conversation:
    """What one call through the cluster did."""

    call: FakeCall
    heard_greeting: bool = False
    heard_reply: bool = False
    problems: list[str] = field(default_factory=list)


async def greeted(world: LoopbackWorld) -> Conversation:
    """Ring the Patter number and wait until the disclosure and greeting are over."""
    call = await world.call_in(timeout=TIMEOUT_S)
    talk = Conversation(call)
    if call.phone is None:
        talk.problems.append(f"no stream: {call.errors} {call.stream_errors} {call.twiml}")
        return talk
    await call.phone.wait_for_heard(3.0, timeout=TIMEOUT_S)
    await call.phone.wait_until_quiet(quiet_s=0.7, timeout=TIMEOUT_S)
    talk.heard_greeting = True
    return talk


async def one_turn_then_hang_up(talk: Conversation) -> Conversation:
    """The caller says :data:`CALLER_SAYS`, hears the answer, then hangs up."""
    phone = talk.call.phone
    if phone is None:
        return talk
    heard = phone.heard_voiced_s
    phone.say_text(CALLER_SAYS)
    await phone.wait_for_heard(heard + 1.0, timeout=TIMEOUT_S)
    await phone.wait_until_quiet(quiet_s=0.7, timeout=TIMEOUT_S)
    talk.heard_reply = True
    await phone.hang_up()
    return talk


async def whole_call(world: LoopbackWorld) -> Conversation:
    """A call from ringing to hang-up: greeting, one turn, hang-up."""
    return await one_turn_then_hang_up(await greeted(world))
