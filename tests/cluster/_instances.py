"""Several Patter instances sharing one Redis, behind the loopback world's one public URL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from patter._client import Patter
from patter.testing.harness import LoopbackWorld, free_port

SERVER_SECRET = "patter-cluster-secret-for-tests-0123456789"


async def eventually(
    read: Callable[[], Awaitable[object]], expected: object, *, timeout: float = 10.0
) -> None:
    """Poll ``await read()`` until it returns ``expected`` (Redis state has no event)."""
    async with asyncio.timeout(timeout):
        while await read() != expected:
            await asyncio.sleep(0.02)


@dataclass
class Instance:
    """One served Patter instance of the cluster."""

    phone: Patter
    port: int
    serving: asyncio.Task[None]

    @property
    def local_url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"


class Instances:
    """Patter instances on their own loopback ports behind the world's one public URL, all
    sharing one Redis and one server secret. Twilio's requests go to the instance chosen
    with ``route_to`` (a balancer's choice, made by the test)."""

    def __init__(self, world: LoopbackWorld, redis_url: str) -> None:
        self.world = world
        self.redis_url = redis_url
        self.instances: list[Instance] = []

    async def serve(
        self, count: int, *, first_message: str = "Hello.", redis_url: str | None = None,
        **serve_kwargs: Any,
    ) -> list[Instance]:
        """Start ``count`` instances serving the same agent; Twilio reaches the first."""
        started = []
        for _ in range(count):
            port = free_port()
            phone = self.world.patter(  # one host: each instance needs its own id
                server_secret=SERVER_SECRET, redis_url=redis_url or self.redis_url,
                instance_id=f"patter-{port}",
            )
            agent = phone.agent("You are a test bot.", first_message=first_message)
            serving = asyncio.create_task(
                phone.serve(agent, port=port, host="127.0.0.1", **serve_kwargs)
            )
            await phone.wait_until_serving()
            started.append(Instance(phone, port, serving))
        self.instances += started
        self.route_to(started[0])
        return started

    def route_to(self, instance: Instance) -> None:
        """Deliver Twilio's next webhooks and media streams to ``instance``."""
        self.world.twilio.route(self.world.public_url, instance.local_url)

    async def close(self) -> None:
        """Stop every instance (as Ctrl-C would)."""
        for instance in self.instances:
            instance.serving.cancel()
        await asyncio.gather(*(i.serving for i in self.instances), return_exceptions=True)
