"""``ClusterCallRegistry``: this instance's calls in memory, and who holds which in Redis."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from patter._calls import CallEntry, InMemoryCallRegistry
from patter._cluster import Cluster


class ClusterCallRegistry:
    """A ``CallRegistry`` for one instance of a cluster.

    The entries (agent, callbacks, session) stay in this process: a call is held by one
    instance. Redis learns which one: ``add`` records this instance as the owner,
    ``claim_stream`` claims the call's stream for the whole cluster, ``remove`` forgets
    the call and frees its line. Lookups are local; a callback for a call held elsewhere is
    forwarded by the server (``Cluster.forward``).
    """

    def __init__(self, cluster: Cluster, local: InMemoryCallRegistry | None = None) -> None:
        self._cluster = cluster
        self._local = local or InMemoryCallRegistry()

    def registering(self) -> AbstractAsyncContextManager[None]:
        """See ``CallRegistry.registering``."""
        return self._local.registering()

    async def add(self, entry: CallEntry) -> CallEntry:
        """See ``CallRegistry.add``; the call is recorded as held here."""
        kept = await self._local.add(entry)
        if kept is entry:
            await self._cluster.claim(entry.call_sid)
        return kept

    async def get(self, call_sid: str) -> CallEntry | None:
        """See ``CallRegistry.get`` (calls held here only)."""
        return await self._local.get(call_sid)

    async def claim_stream(self, call_sid: str) -> bool:
        """See ``CallRegistry.claim_stream``; False too if another instance streams the
        call, or Redis cannot say."""
        if not await self._local.claim_stream(call_sid):
            return False
        if await self._cluster.claim_stream(call_sid):
            return True
        entry = await self._local.get(call_sid)
        if entry is not None:
            entry.streaming = False
        return False

    async def remove(self, call_sid: str) -> None:
        """See ``CallRegistry.remove``; the call is forgotten in Redis and its line freed."""
        await self._local.remove(call_sid)
        await self._cluster.forget(call_sid)

    async def entries(self) -> list[CallEntry]:
        """See ``CallRegistry.entries`` (calls held here only)."""
        return await self._local.entries()
