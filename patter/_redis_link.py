"""The connection to the cluster's Redis: commands that fail fast, loss and reconnection.

``RedisLink.run(op)`` runs one Redis operation. While Redis answers it is a plain call.
When a command cannot reach Redis the link goes *down*: it logs one line saying so (and
that new calls are refused until it is back), and from then on ``run`` raises
``RedisUnavailable`` at once, without waiting on a socket, while a background task pings
Redis with exponential backoff. The first ping answered brings the link back *up* (one log
line). Nothing else retries: callers decide what a refused operation means (busy TwiML for
a new call, a refused media stream, a callback not forwarded).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from patter._log import get_logger, register_secret
from patter._validate import masked_url
from patter.errors import PatterConfigError

logger = get_logger(__name__)

T = TypeVar("T")
LOST_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
"""Errors meaning Redis could not be reached (not that a command was wrong)."""


class RedisUnavailable(Exception):
    """Redis cannot be reached now; the link reconnects by itself."""


class RedisLink:
    """One client of the cluster's Redis, and whether Redis answers.

    Args:
        url: ``redis://[:password@]host[:port][/db]`` (or ``rediss://``, ``unix://``).
        timeout_s: Connect and command timeout; a command slower than this counts as lost.
        reconnect_max_s: Longest wait between two reconnection attempts (the first waits
            ``reconnect_min_s``, each next one twice as long).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 1.0,
        reconnect_min_s: float = 0.1,
        reconnect_max_s: float = 5.0,
    ) -> None:
        password = urlsplit(url).password
        register_secret(unquote(password) if password else None)
        self.where = masked_url(url)
        self.client: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._up = asyncio.Event()
        self._reconnecting: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"RedisLink({self.where!r}, up={self.up})"

    @property
    def up(self) -> bool:
        """Whether Redis answered the last command (False while reconnecting)."""
        return self._up.is_set()

    async def connect(self) -> None:
        """Reach Redis once; raises ``PatterConfigError`` naming the (masked) URL if it can't."""
        try:
            await self.client.ping()
        except LOST_ERRORS as exc:
            raise PatterConfigError(
                f"cannot reach Redis at {self.where} ({type(exc).__name__}: {exc}): start it, "
                "or fix Patter(redis_url=...) / PATTER_REDIS_URL."
            ) from None
        self._up.set()

    async def run(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """``await op(client)``; raises ``RedisUnavailable`` (at once while the link is down)."""
        if not self.up:
            raise RedisUnavailable(f"redis at {self.where} is unreachable")
        try:
            return await op(self.client)
        except LOST_ERRORS as exc:
            self.lost(exc)
            raise RedisUnavailable(f"redis at {self.where} is unreachable") from exc

    def lost(self, exc: BaseException) -> None:
        """Redis did not answer: log it once, refuse commands, and start reconnecting."""
        if not self.up:
            return
        self._up.clear()
        logger.error(
            "redis unreachable: calls in progress go on; new calls are answered busy "
            "until it is back",
            extra={"redis": self.where, "error": f"{type(exc).__name__}: {exc}"},
        )
        self._reconnecting = asyncio.ensure_future(self._reconnect())

    async def wait_up(self) -> None:
        """Return once Redis answers."""
        await self._up.wait()

    async def close(self) -> None:
        """Stop reconnecting and close the client's connections."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            await asyncio.gather(self._reconnecting, return_exceptions=True)
        self._up.clear()
        await self.client.aclose()

    async def _reconnect(self) -> None:
        delay = self._reconnect_min_s
        attempts = 0
        while True:
            await asyncio.sleep(delay)
            attempts += 1
            try:
                await self.client.ping()
            except LOST_ERRORS:
                delay = min(delay * 2, self._reconnect_max_s)
                continue
            logger.warning(
                "redis reachable again: taking new calls",
                extra={"redis": self.where, "attempts": attempts},
            )
            self._up.set()
            return
