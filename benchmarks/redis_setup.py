"""Redis's cost in a call's set-up: in-memory (one instance) vs Redis (a cluster), side by side.

Run: ``.venv/bin/python -P benchmarks/redis_setup.py [--calls 300]``

Starts a real ``redis-server`` on loopback (``patter.testing.redis_server``) and two
in-process Patter servers on the loopback fakes, one alone and one with a ``Cluster`` on that
Redis. For each of ``--calls`` new calls, on each server, it times the two steps of a call's
set-up that touch Redis:

* **voice webhook**: a signed ``POST /twilio/voice`` through the app (httpx's ASGI
  transport, no socket), until the TwiML with the media token is back: with Redis, the
  lookup of who holds the call, the cluster-wide ``max_calls`` lease (Lua) and recording
  the owner;
* **stream start**: what the media route does with the ``start`` message before the call
  runs: redeem the token, and with Redis spend it cluster-wide (``SET NX``) and claim the
  call's stream (Lua).

It prints the median and p95 of each step for both, their ratio, and the extra milliseconds
Redis adds to the set-up at the median (the target is under 5 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
import xml.etree.ElementTree as ET

import httpx
from twilio.request_validator import RequestValidator

from patter._cluster import Cluster
from patter._redis_link import RedisLink
from patter._server import VOICE_PATH, PatterServer
from patter.testing.harness import CALLER_NUMBER, PATTER_NUMBER, LoopbackWorld
from patter.testing.redis_server import RedisServer

TARGET_MS = 5.0


async def set_up_times(
    world: LoopbackWorld, server: PatterServer, calls: int
) -> dict[str, list[float]]:
    """Milliseconds of each set-up step, for ``calls`` new calls on ``server``."""
    validator = RequestValidator(world.twilio.auth_token)
    voice, stream = [], []
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        for _ in range(calls):
            call_sid = "CA" + secrets.token_hex(16)
            form = {
                "AccountSid": world.twilio.account_sid, "CallSid": call_sid,
                "CallStatus": "ringing", "Direction": "inbound",
                "From": CALLER_NUMBER, "To": PATTER_NUMBER,
            }
            signature = validator.compute_signature(f"{world.public_url}{VOICE_PATH}", form)
            started = time.perf_counter()
            answer = await client.post(VOICE_PATH, data=form,
                                       headers={"x-twilio-signature": signature})
            voice.append((time.perf_counter() - started) * 1000)
            token = next(p.get("value") for p in ET.fromstring(answer.text).iter("Parameter")
                         if p.get("name") == "token")
            started = time.perf_counter()
            nonce = server.tokens.redeem(token, call_sid)
            if server.cluster is not None:
                await server.cluster.spend_token(nonce)
            claimed = await server.registry.claim_stream(call_sid)
            stream.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200 or not claimed:
                raise RuntimeError(f"call {call_sid} was not set up: {answer.status_code}")
    return {"voice webhook": voice, "stream start": stream}


def p95(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.95) - 1]


async def main(calls: int) -> None:
    with RedisServer() as redis_server:
        async with LoopbackWorld() as world:
            alone = world.in_process_server(max_calls=calls + 100)
            cluster = Cluster(RedisLink(redis_server.url), instance_id="bench")
            shared = world.in_process_server(max_calls=calls + 100, cluster=cluster)
            await cluster.start(shared.on_forwarded, shared.registry.entries)
            try:
                await set_up_times(world, alone, 20)  # warm-up: imports, pools, scripts
                await set_up_times(world, shared, 20)
                memory = await set_up_times(world, alone, calls)
                redis = await set_up_times(world, shared, calls)
            finally:
                await cluster.close()
                for server in (alone, shared):
                    await server.rest.close()
    print(f"Redis's cost in a call's set-up, {calls} calls each "
          "(ms; in-memory = one instance, Redis = a cluster instance)")
    print(f"{'step':<15} {'in-memory p50':>13} {'Redis p50':>10} {'ratio':>6} "
          f"{'in-memory p95':>14} {'Redis p95':>10}")
    extra = 0.0
    for step in memory:
        m50, r50 = statistics.median(memory[step]), statistics.median(redis[step])
        extra += r50 - m50
        print(f"{step:<15} {m50:>13.2f} {r50:>10.2f} {r50 / m50:>5.1f}x "
              f"{p95(memory[step]):>14.2f} {p95(redis[step]):>10.2f}")
    verdict = "within" if extra < TARGET_MS else "OVER"
    print(f"extra set-up latency with Redis (median): {extra:.2f} ms — {verdict} the "
          f"{TARGET_MS:g} ms target")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    asyncio.run(main(parser.parse_args().calls))
