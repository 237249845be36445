"""What several Patter instances share through one Redis (``Patter(redis_url=...)``).

Each instance has an id. In Redis (keys under ``patter:``):

- ``call:<CallSid>`` (hash ``owner``, ``stream``): which instance holds the call, and which
  one streams it. The owner refreshes it at each heartbeat; it expires ``ttl_s`` after the
  last one, so a crashed instance's calls disappear by themselves.
- ``leases`` (sorted set CallSid → expiry): the concurrent-call cap of the whole cluster.
  A Lua script drops expired leases and takes one only while fewer than ``max_calls`` are
  held, atomically; a call's lease lasts a media token's lifetime until its stream starts,
  then the owner renews it at each heartbeat. Leases use Redis's clock, not the instances'.
- ``token:<nonce>``: a spent media token (``SET NX`` for the token's lifetime), so a token
  is single use across the cluster.
- channels ``route:<instance id>`` and ``route-all``: a status, AMD or recording callback
  that lands on an instance without the call is published to the owner's channel (or to
  every instance while the owner is not known yet, e.g. a call still being placed); the
  instance holding the call handles it as if Twilio had called it.

Without Redis nothing here runs: one instance keeps everything in memory
(``patter._calls.InMemoryCallRegistry``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from patter._calls import CallEntry
from patter._log import get_logger
from patter._redis_link import LOST_ERRORS, RedisLink, RedisUnavailable
from patter._security import InvalidMediaToken
from patter.errors import PatterConfigError

logger = get_logger(__name__)

ForwardedHandler = Callable[[str, dict[str, str]], Awaitable[None]]
"""Handles a callback another instance forwarded: (kind, form)."""
EntriesSource = Callable[[], Awaitable[list[CallEntry]]]
"""The calls this instance holds."""

_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_ADMIT = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
_RENEW = _NOW_MS + """
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[i]) end
return #ARGV - 1
"""
_COUNT = _NOW_MS + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
_CLAIM = """
local holder = redis.call('HGET', KEYS[1], 'stream')
if holder and holder ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1])
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'stream', ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_FORGET = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""
_CLAIM_STREAM = """
local holder = redis.call('HGET', KEYS[1], 'stream')
if holder and holder ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'stream', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


@dataclass(frozen=True)
class CallRecord:
    """What Redis knows about a call: the instance holding it, and whether it streams."""

    owner: str
    streaming: bool


class Cluster:
    """This instance's part in a cluster of Patter instances sharing one Redis.

    Args:
        link: The connection to Redis.
        instance_id: This instance's id, unique in the cluster (the balancer routes media
            streams on it).
        token_ttl_s: How long a media token lives (the lease of an answered call that has
            not streamed yet lasts as long).
        heartbeat_s: How often this instance refreshes its calls and leases.
        ttl_s: How long a call and its lease outlive the last heartbeat (a crashed
            instance's calls are gone after this).
        prefix: Prefix of every key and channel.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        instance_id: str,
        token_ttl_s: float = 60.0,
        heartbeat_s: float = 5.0,
        ttl_s: float = 20.0,
        prefix: str = "patter:",
    ) -> None:
        if not instance_id or any(c.isspace() or c == "/" for c in instance_id):
            raise PatterConfigError(
                "the instance id must be a non-empty word without spaces or '/' (it names "
                f"the instance in Redis and in its media URL); got {instance_id!r}."
            )
        self.link = link
        self.instance_id = instance_id
        self._token_ttl_ms = int(token_ttl_s * 1000)
        self._heartbeat_s = heartbeat_s
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._leases = f"{prefix}leases"
        self._broadcast = f"{prefix}route-all"
        client = link.client
        self._admit_script = client.register_script(_ADMIT)
        self._renew_script = client.register_script(_RENEW)
        self._count_script = client.register_script(_COUNT)
        self._claim_script = client.register_script(_CLAIM)
        self._forget_script = client.register_script(_FORGET)
        self._claim_stream_script = client.register_script(_CLAIM_STREAM)
        self._tasks: set[asyncio.Task[None]] = set()
        self.subscribed = asyncio.Event()
        """Set while this instance listens for forwarded callbacks."""
        self.beats = 0
        """Heartbeats written so far."""

    def __repr__(self) -> str:
        return f"Cluster(instance_id={self.instance_id!r}, link={self.link!r})"

    # ----- life -------------------------------------------------------------------------

    async def start(self, on_forwarded: ForwardedHandler, entries: EntriesSource) -> None:
        """Reach Redis, then listen for forwarded callbacks and beat for ``entries``' calls."""
        await self.link.connect()
        self._spawn(self._listen(on_forwarded))
        self._spawn(self._beat(entries))
        await self.subscribed.wait()

    async def close(self) -> None:
        """Stop listening and beating, and close the link. The calls still recorded here
        expire like a crashed instance's (calls end, and are forgotten, before this)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.link.close()

    # ----- the call directory -------------------------------------------------------------

    async def lookup(self, call_sid: str) -> CallRecord | None:
        """The call's record, or None if no instance holds it (or Redis is unreachable)."""
        try:
            fields = await self.link.run(lambda r: r.hgetall(self._call(call_sid)))
        except RedisUnavailable:
            return None
        owner = fields.get("owner")  # str: the client decodes responses
        if not isinstance(owner, str) or not owner:
            return None
        return CallRecord(owner=owner, streaming=bool(fields.get("stream")))

    async def owner_of(self, call_sid: str) -> str | None:
        """The id of the instance holding ``call_sid``, or None if none does (or Redis is
        unreachable). The voice webhook of a call held elsewhere is answered with a media
        URL naming its owner, so the stream reaches it."""
        record = await self.lookup(call_sid)
        return record.owner if record is not None else None

    async def claim(self, call_sid: str) -> None:
        """Record this instance as the call's owner, unless another instance streams it
        (best effort: the heartbeat retries)."""
        await self._best_effort(
            lambda r: self._claim_script(
                keys=[self._call(call_sid)], args=[self.instance_id, self._ttl_ms, 0], client=r
            ),
            "recording the call's owner failed", call_sid,
        )

    async def claim_stream(self, call_sid: str) -> bool:
        """Mark the call as streamed by this instance; False if another instance streams it
        or Redis is unreachable."""
        try:
            claimed = await self.link.run(
                lambda r: self._claim_stream_script(
                    keys=[self._call(call_sid)], args=[self.instance_id, self._ttl_ms], client=r
                )
            )
        except RedisUnavailable:
            return False
        return bool(claimed)

    async def forget(self, call_sid: str) -> None:
        """The call is over here: drop its record and free its line (unless another
        instance holds it)."""
        await self._best_effort(
            lambda r: self._forget_script(
                keys=[self._call(call_sid), self._leases], args=[self.instance_id, call_sid],
                client=r,
            ),
            "forgetting the call failed", call_sid,
        )

    # ----- the cluster-wide cap -----------------------------------------------------------

    async def admit(self, call_sid: str, max_calls: int) -> bool:
        """Take a line for ``call_sid`` if fewer than ``max_calls`` are taken in the whole
        cluster (a call that has one keeps it); False, with a log line saying why, if not."""
        try:
            taken = await self.link.run(
                lambda r: self._admit_script(
                    keys=[self._leases], args=[call_sid, max_calls, self._token_ttl_ms],
                    client=r,
                )
            )
        except RedisUnavailable:
            logger.warning(
                "redis unreachable: answering busy (the cluster's max_calls cannot be kept)",
                extra={"call_sid": call_sid, "redis": self.link.where},
            )
            return False
        if not taken:
            logger.warning("over the cluster's max_calls: answering busy",
                           extra={"call_sid": call_sid, "max_calls": max_calls})
        return bool(taken)

    async def release(self, call_sid: str) -> None:
        """Free the call's line (its record stays while a recording callback may come)."""
        await self._best_effort(
            lambda r: r.zrem(self._leases, call_sid), "freeing the call's line failed", call_sid
        )

    async def calls_in_progress(self) -> int:
        """Lines taken in the whole cluster; raises ``RedisUnavailable``."""
        count = await self.link.run(
            lambda r: self._count_script(keys=[self._leases], args=[], client=r)
        )
        return int(count)

    # ----- media tokens -------------------------------------------------------------------

    async def spend_token(self, nonce: str) -> None:
        """Spend a media token's nonce for the whole cluster; raises ``InvalidMediaToken`` if
        it was spent already, or if Redis cannot say (a stream is refused, not let through)."""
        key = f"{self._prefix}token:{nonce}"
        ttl_ms = self._token_ttl_ms
        try:
            fresh = await self.link.run(
                lambda r: r.set(key, self.instance_id, nx=True, px=ttl_ms)
            )
        except RedisUnavailable:
            raise InvalidMediaToken("redis unreachable: single use cannot be checked") from None
        if not fresh:
            raise InvalidMediaToken("token already used")

    # ----- callback routing ---------------------------------------------------------------

    async def forward(self, kind: str, form: dict[str, str]) -> None:
        """Hand a callback for a call this instance does not hold to the instance that does
        (or, while no instance is recorded for it, to all of them)."""
        call_sid = form["CallSid"]
        record = await self.lookup(call_sid)
        if record is not None and record.owner == self.instance_id:
            return  # recorded here, but no longer held: nothing is waiting for it
        channel = self._channel(record.owner) if record is not None else self._broadcast
        message = json.dumps({"kind": kind, "form": form, "from": self.instance_id})
        try:
            receivers = await self.link.run(lambda r: r.publish(channel, message))
        except RedisUnavailable:
            logger.warning("redis unreachable: a callback for another instance's call is "
                           "dropped", extra={"call_sid": call_sid, "kind": kind})
            return
        if record is not None and not receivers:
            logger.warning("callback for a call whose instance is gone",
                           extra={"call_sid": call_sid, "kind": kind, "owner": record.owner})
        else:
            logger.debug("callback forwarded", extra={
                "call_sid": call_sid, "kind": kind,
                "to": record.owner if record is not None else "every instance",
            })

    async def _listen(self, on_forwarded: ForwardedHandler) -> None:
        while True:
            await self.link.wait_up()
            pubsub = self.link.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel(self.instance_id), self._broadcast)
                self.subscribed.set()
                async for message in pubsub.listen():
                    self._spawn(self._deliver(on_forwarded, message["data"]))
            except LOST_ERRORS as exc:
                self.link.lost(exc)
            finally:
                self.subscribed.clear()
                await pubsub.aclose()

    async def _deliver(self, on_forwarded: ForwardedHandler, data: str) -> None:
        message = json.loads(data)
        if message["from"] == self.instance_id:
            return  # its own broadcast: this instance has no such call
        try:
            await on_forwarded(message["kind"], message["form"])
        except Exception:
            logger.exception("handling a forwarded callback failed",
                             extra={"call_sid": message["form"].get("CallSid", "-")})

    # ----- heartbeat ----------------------------------------------------------------------

    async def _beat(self, entries: EntriesSource) -> None:
        while True:
            if self.link.up:
                try:
                    await self.link.run(lambda r: self._refresh(r, entries))
                    self.beats += 1
                except RedisUnavailable:
                    pass  # logged by the link, which reconnects; the next beat rewrites all
            await asyncio.sleep(self._heartbeat_s)

    async def _refresh(self, r: Redis, entries: EntriesSource) -> None:
        """Rewrite every call held here (so a Redis that restarted empty knows them again)
        and renew the leases of the calls streaming here."""
        held = await entries()
        streaming = [e.call_sid for e in held if e.streaming and not e.ended]
        async with r.pipeline(transaction=False) as pipe:
            for entry in held:
                await self._claim_script(
                    keys=[self._call(entry.call_sid)],
                    args=[self.instance_id, self._ttl_ms, int(entry.streaming)], client=pipe,
                )
            await pipe.execute()
        if streaming:
            await self._renew_script(
                keys=[self._leases], args=[self._ttl_ms, *streaming], client=r
            )

    # ----- helpers ------------------------------------------------------------------------

    def _call(self, call_sid: str) -> str:
        return f"{self._prefix}call:{call_sid}"

    def _channel(self, instance_id: str) -> str:
        return f"{self._prefix}route:{instance_id}"

    async def _best_effort(
        self, op: Callable[[Redis], Awaitable[object]], failure: str, call_sid: str
    ) -> None:
        try:
            await self.link.run(op)
        except RedisUnavailable:
            logger.info(failure, extra={"call_sid": call_sid, "reason": "redis unreachable"})

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
