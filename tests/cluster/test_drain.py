"""SIGTERM to one of three Patter processes behind HAProxy while calls are live: it stops
taking calls, its live calls go on to their end, new calls go to the others, every
``on_call_end`` is delivered once, and it exits 0."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
import pytest_asyncio
from _haproxy_world import (
    TIMEOUT_S,
    Conversation,
    events,
    greeted,
    haproxy_world,
    one_turn_then_hang_up,
    stream_instance,
    wait_for_event,
    whole_call,
)

from patter.testing.cluster import Instance, LocalCluster

NEW_CALLS = 4


@dataclass
class Run:
    """What the module's one drain observed."""

    victim: str
    first: list[Conversation]
    new: list[Conversation]
    ready_while_draining: tuple[int, str]
    healthy_while_draining: int
    states_while_draining: dict[tuple[str, str], str]
    exit_code: int | None
    victim_lines: list[str]
    ends: dict[str, list[dict[str, str]]]


async def draining(instance: Instance) -> tuple[int, str]:
    """Wait until the instance's /readyz fails; its status and body then."""
    async with httpx.AsyncClient(trust_env=False) as http:
        async with asyncio.timeout(TIMEOUT_S):
            while (ready := await http.get(instance.url + "/readyz")).status_code == 200:
                await asyncio.sleep(0.05)
    return ready.status_code, ready.text


async def healthz(instance: Instance) -> int:
    async with httpx.AsyncClient(trust_env=False) as http:
        return (await http.get(instance.url + "/healthz")).status_code


def victim_of(cluster: LocalCluster, talk: Conversation) -> Instance:
    return next(i for i in cluster.instances if i.id == stream_instance(talk.call))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(module_clean_env: None) -> Run:
    """Three live calls, greeted together (one per instance, as round robin places them);
    SIGTERM to the first call's instance; NEW_CALLS new calls during its drain; then the
    first calls take one more turn and hang up."""
    async with haproxy_world() as (world, cluster):
        first = list(await asyncio.gather(*(greeted(world) for _ in range(3))))
        victim = victim_of(cluster, first[0])
        victim.stop()
        ready = await draining(victim)
        healthy = await healthz(victim)
        new = list(await asyncio.gather(*(whole_call(world) for _ in range(NEW_CALLS))))
        states = await cluster.server_states()
        await asyncio.gather(*(one_turn_then_hang_up(talk) for talk in first))
        exit_code = await asyncio.wait_for(victim.process.wait(), TIMEOUT_S)
        for talk in first + new:
            await wait_for_event(cluster, "end", talk.call.sid)
        await asyncio.sleep(0.5)  # a second on_call_end would arrive here
        return Run(
            victim.id, first, new, ready, healthy, states, exit_code, list(victim.lines),
            {t.call.sid: events(cluster, "end", t.call.sid) for t in first + new},
        )


def test_the_draining_instance_is_alive_but_not_ready(run: Run) -> None:
    assert run.ready_while_draining == (503, "draining\n")
    assert run.healthy_while_draining == 200


def test_the_balancer_sends_it_no_new_call_but_keeps_its_streams(run: Run) -> None:
    assert run.states_while_draining[("new_calls", run.victim)] == "DOWN"
    assert run.states_while_draining[("instances", run.victim)] == "UP"


def test_new_calls_during_the_drain_go_to_the_others_and_complete(run: Run) -> None:
    for talk in run.new:
        assert not talk.problems, talk.problems
        assert stream_instance(talk.call) != run.victim
        assert talk.heard_greeting and talk.heard_reply


def test_the_calls_live_at_sigterm_go_on_to_their_end(run: Run) -> None:
    for talk in run.first:
        assert not talk.problems, talk.problems
        assert talk.heard_reply  # said after the SIGTERM, answered


def test_no_call_is_lost_and_each_ends_once_by_its_caller(run: Run) -> None:
    for sid, ends in run.ends.items():
        assert [end["ended_by"] for end in ends] == ["caller"], (sid, ends)


def test_the_drained_instance_reports_its_calls_ends_then_exits_0(run: Run) -> None:
    assert run.exit_code == 0
    own = [talk.call.sid for talk in run.first if stream_instance(talk.call) == run.victim]
    assert own
    stopped = next(n for n, line in enumerate(run.victim_lines) if '"stopped"' in line)
    for sid in own:
        assert any(sid in line and '"end"' in line for line in run.victim_lines[:stopped])
