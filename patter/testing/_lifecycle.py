"""``async with`` for the loopback pieces (servers, fakes, the phone, the world)."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class AsyncStartClose:
    """Mixin: ``async with thing:`` awaits ``thing.start()`` on entry, ``thing.close()`` on
    exit (also when the block raised). Subclasses define both."""

    async def start(self) -> None:
        """Bring the thing up (serve, connect...)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Take it down again; safe to call twice."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
