"""Fixtures of the cluster tests: a real redis-server, and Patter instances sharing it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis
from _instances import Instances

from patter.testing.harness import LoopbackWorld
from patter.testing.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the whole test session (on a free port, nothing saved)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
async def instances(world: LoopbackWorld, redis_url: str) -> AsyncIterator[Instances]:
    """Instances sharing the session's Redis (``await instances.serve(n)``)."""
    instances = Instances(world, redis_url)
    try:
        yield instances
    finally:
        await instances.close()
