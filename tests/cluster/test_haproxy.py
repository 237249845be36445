"""Three Patter processes behind a real HAProxy: inbound calls spread across them, each
stream reaches the instance that answered it, and each call completes end to end; a dead
instance's stream is taken by another; with none ready HAProxy answers busy."""

from __future__ import annotations

import asyncio
import secrets
import signal
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio
from _haproxy_world import (
    SERVER_SECRET,
    TIMEOUT_S,
    Conversation,
    events,
    haproxy_world,
    stream_instance,
    wait_for_event,
    whole_call,
)

from patter._security import MediaTokens
from patter._twiml import BUSY_MESSAGE
from patter.testing.cluster import LocalCluster
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import CALLER_NUMBER, PATTER_NUMBER, LoopbackWorld
from patter.testing.phone import SimulatedPhone

CALLS = 6


@dataclass
class Run:
    """Everything the module's one cluster run observed."""

    talks: list[Conversation]
    starts: dict[str, list[dict[str, str]]]
    ends: dict[str, list[dict[str, str]]]
    health: dict[str, int] = field(default_factory=dict)
    none_ready: FakeCall | None = None
    orphan: tuple[str, float] | None = None


async def stream_of_a_dead_instance(
    world: LoopbackWorld, cluster: LocalCluster
) -> tuple[str, float]:
    """Kill p1, then open a call's stream named for p1 with a valid token (as Twilio would
    for a call p1 answered just before it died): the instance that took it, and the seconds
    of the agent the caller heard."""
    dead = cluster.instances[0]
    dead.stop(signal.SIGKILL)
    await dead.process.wait()
    call_sid = "CA" + secrets.token_hex(16)
    phone = SimulatedPhone(
        f"ws://127.0.0.1:{cluster.port}/twilio/media/{dead.id}",
        custom_parameters={"token": MediaTokens(SERVER_SECRET).issue(call_sid),
                           "from": CALLER_NUMBER, "to": PATTER_NUMBER, "direction": "inbound"},
        account_sid=world.twilio.account_sid, call_sid=call_sid,
    )
    async with phone:
        await phone.wait_for_heard(1.0, timeout=TIMEOUT_S)
        heard = phone.heard_voiced_s
    await wait_for_event(cluster, "end", call_sid)
    return events(cluster, "start", call_sid)[0]["instance"], heard


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(module_clean_env: None) -> Run:
    """One cluster; its health answers; then CALLS concurrent calls through it, each waited
    on until its instance reported its end; last, every instance drained and a call rings."""
    async with haproxy_world() as (world, cluster):
        health: dict[str, int] = {}
        async with httpx.AsyncClient(trust_env=False) as http:
            for path in ("/healthz", "/readyz"):
                health[f"balancer {path}"] = (await http.get(cluster.url + path)).status_code
                for instance in cluster.instances:
                    answer = await http.get(instance.url + path)
                    health[f"{instance.id} {path}"] = answer.status_code
        talks = await asyncio.gather(*(whole_call(world) for _ in range(CALLS)))
        for talk in talks:
            await wait_for_event(cluster, "end", talk.call.sid)
        await asyncio.sleep(0.5)  # a second on_call_end would arrive here
        sids = [talk.call.sid for talk in talks]
        run = Run(
            talks,
            {sid: events(cluster, "start", sid) for sid in sids},
            {sid: events(cluster, "end", sid) for sid in sids},
            health,
        )
        run.orphan = await stream_of_a_dead_instance(world, cluster)
        for instance in cluster.instances:
            instance.stop()
        await cluster.wait_for_servers(
            lambda states: all(state != "UP" for (backend, _), state in states.items()
                               if backend == "new_calls")
        )
        run.none_ready = await world.call_in()
        return run


def test_healthz_and_readyz_answer_through_the_balancer_and_on_each_instance(run: Run) -> None:
    assert run.health and all(status == 200 for status in run.health.values()), run.health


def test_every_call_is_answered_greets_hears_the_caller_and_is_answered(run: Run) -> None:
    for talk in run.talks:
        assert not talk.problems, talk.problems
        assert talk.heard_greeting and talk.heard_reply


def test_calls_spread_across_the_three_instances(run: Run) -> None:
    answered_by = {stream_instance(talk.call) for talk in run.talks}
    assert answered_by == {"p1", "p2", "p3"}


@pytest.mark.parametrize("call", range(CALLS))
def test_each_stream_reaches_the_instance_that_answered_its_call(run: Run, call: int) -> None:
    talk = run.talks[call]
    starts = run.starts[talk.call.sid]
    assert [start["instance"] for start in starts] == [stream_instance(talk.call)]


def test_each_call_ends_once_by_the_caller(run: Run) -> None:
    for talk in run.talks:
        ends = run.ends[talk.call.sid]
        assert [end["ended_by"] for end in ends] == ["caller"], ends
        assert talk.call.status == "completed"


def test_with_no_instance_ready_the_balancer_answers_busy_as_an_instance_would(run: Run) -> None:
    assert run.none_ready is not None
    assert run.none_ready.phone is None
    assert run.none_ready.said == [BUSY_MESSAGE]


def test_a_stream_named_for_a_dead_instance_is_taken_by_another(run: Run) -> None:
    assert run.orphan is not None
    instance, heard_s = run.orphan
    assert instance in ("p2", "p3")
    assert heard_s >= 1.0
