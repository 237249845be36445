"""deploy/local-cluster: an example agent served as two instances behind HAProxy answers a
call through the balancer; Ctrl-C stops everything and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal

from _haproxy_world import ROOT, TIMEOUT_S

from patter.testing.harness import LoopbackWorld, free_port


async def test_local_cluster_serves_an_example_and_ctrl_c_stops_it(world: LoopbackWorld) -> None:
    port = free_port()
    world.port = port
    world.twilio.route(world.public_url, f"http://127.0.0.1:{port}")
    script = await asyncio.create_subprocess_exec(
        str(ROOT / "deploy" / "local-cluster"), f"{ROOT}/examples/receptionist.py:agent",
        "-n", "2", "--port", str(port), "--no-redis",
        env={**os.environ, **world.environment()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    lines: list[str] = []
    try:
        assert script.stdout is not None
        async with asyncio.timeout(TIMEOUT_S * 2):
            while not any(line.startswith("balancer: ") for line in lines):
                line = await script.stdout.readline()
                assert line, f"local-cluster exited: {lines[-20:]}"
                lines.append(line.decode().rstrip())
        call = await world.call_in(timeout=TIMEOUT_S)
        assert call.phone is not None, (call.errors, call.stream_errors)
        await call.phone.wait_for_heard(2.0, timeout=TIMEOUT_S)
        await call.phone.hang_up()

        script.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(script.communicate(), TIMEOUT_S)
    finally:
        if script.returncode is None:
            script.kill()
            await script.wait()
    lines += rest.decode().splitlines()
    assert script.returncode == 0
    assert any(line.startswith("[p1] ") for line in lines)
    assert any(line.startswith("[p2] ") for line in lines)
    assert any("call ended by caller" in line for line in lines)
