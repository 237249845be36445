"""The simulated phone's timeline: what happened when, and waiting for what comes next."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PhoneEvent:
    """One entry of the phone's timeline; ``t`` is ``time.monotonic()``."""

    t: float
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class Timeline:
    """Events in order, and a wake-up for everyone waiting on the phone's state."""

    def __init__(self) -> None:
        self.events: list[PhoneEvent] = []
        self._change = asyncio.Event()

    def add(self, kind: str, **data: Any) -> None:
        """Record an event now (and wake the waiters)."""
        self.events.append(PhoneEvent(time.monotonic(), kind, data))
        self.changed()

    def of(self, kind: str) -> list[PhoneEvent]:
        """The events of one kind."""
        return [event for event in self.events if event.kind == kind]

    def changed(self) -> None:
        """Wake everyone waiting: some state of the phone changed."""
        self._change.set()
        self._change = asyncio.Event()

    async def next_change(self, timeout_s: float | None = None) -> None:
        """Wait for the next change, at most ``timeout_s``."""
        try:
            await asyncio.wait_for(self._change.wait(), timeout_s)
        except TimeoutError:
            pass

    async def wait(
        self, predicate: Callable[[], bool], timeout: float | None, what: Callable[[], str]
    ) -> None:
        """Wait until ``predicate()``; on timeout raise ``TimeoutError(what())``."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._change.wait()
        except TimeoutError:
            raise TimeoutError(what()) from None
