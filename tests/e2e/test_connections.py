"""Calls share their vendor connections: no call waits for a new connection that an earlier
call left open."""

from __future__ import annotations

from patter.testing.harness import LoopbackWorld

CALLER_SAYS = "I would like to book a table for two tonight."


async def a_call_with_one_turn(world: LoopbackWorld) -> set[int]:
    """Call in, say one line, hear the answer, hang up; the client ports of the OpenAI
    requests the call made (one port: one TCP connection)."""
    first = len(world.openai.requests)
    world.openai.transcripts.append(CALLER_SAYS)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    call.phone.say_text(CALLER_SAYS)
    await call.phone.wait_for_heard(call.phone.heard_voiced_s + 0.5, timeout=30)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    await call.phone.hang_up()
    await call.wait_ended()
    requests = world.openai.requests[first:]
    assert {r.path.rsplit("/", 1)[-1] for r in requests} >= {
        "transcriptions", "completions", "speech"}
    return {r.client_port for r in requests}


async def test_the_next_call_reuses_the_openai_connections_of_the_last(
        world: LoopbackWorld) -> None:
    phone = world.patter()
    await world.serve(phone, phone.agent("You are a test bot.", first_message="Hello there!"))

    first = await a_call_with_one_turn(world)
    second = await a_call_with_one_turn(world)

    # STT, LLM and TTS of both calls went over the same few pooled connections.
    assert second <= first
