"""Fault injection for the loopback fakes: vendor errors, hangs, cut streams, dropped sockets.

Every fake has a ``faults`` queue per request kind; each request of that kind takes the
next fault (if any) instead of its normal answer::

    fake_openai.faults.add("chat", Fault.http(500), times=2)      # two 500s, then normal
    fake_twilio.faults.add("calls.redirect", Fault.http(429, retry_after_s=0.1))
    fake_deepgram.faults.add("listen", Fault.drop())              # socket dies mid-session
    ...
    assert [f.kind for f in fake_openai.faults.fired] == ["chat", "chat"]
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

FaultKind = Literal["http", "hang", "cut", "drop"]

HTTP: Final = "http"
HANG: Final = "hang"
CUT: Final = "cut"
DROP: Final = "drop"
#: What each fault kind means; a request kind of a fake supports a subset.
FAULT_KINDS: dict[str, str] = {
    HTTP: "answer an HTTP error (a WebSocket handshake is refused with it)",
    HANG: "accept the request and never answer until the fake closes",
    CUT: "start the answer, then cut the stream abruptly after its first chunk or message",
    DROP: "accept the WebSocket, then close it abruptly (no close frame) on the first message",
}


@dataclass(frozen=True)
class Fault:
    """One fault a fake plays instead of a normal answer. Build it with the class methods."""

    kind: FaultKind
    status: int = 0
    """HTTP status of an ``http`` fault."""
    retry_after_s: float | None = None
    """``Retry-After`` header of an ``http`` fault (None: no header)."""
    code: int | None = None
    """The vendor's error code in the body, where it has one (Twilio: e.g. 20404)."""

    @classmethod
    def http(cls, status: int, *, retry_after_s: float | None = None,
             code: int | None = None) -> Fault:
        """An HTTP error in the vendor's own error shape, e.g. ``Fault.http(500)``,
        ``Fault.http(429, retry_after_s=1)`` or ``Fault.http(404, code=20404)``."""
        if not 400 <= status <= 599:
            raise ValueError(f"Fault.http needs an error status (400-599), not {status}")
        return cls(HTTP, status, retry_after_s, code)

    @classmethod
    def hang(cls) -> Fault:
        """Accept the request (or socket handshake) and never answer until the fake closes."""
        return cls(HANG)

    @classmethod
    def cut(cls) -> Fault:
        """Send the first chunk of the answer (SSE event, audio chunk, socket message), then
        close the connection abruptly."""
        return cls(CUT)

    @classmethod
    def drop(cls) -> Fault:
        """Accept the WebSocket, then close it abruptly when the client's first message
        arrives (sockets only)."""
        return cls(DROP)

    def headers(self) -> dict[str, str]:
        """The response headers of an ``http`` fault (``Retry-After`` if set)."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": f"{self.retry_after_s:g}"}


@dataclass(frozen=True)
class FiredFault:
    """A fault a request took: its request kind and the fault."""

    request: str
    fault: Fault


class Faults:
    """Per request kind, a queue of faults consumed one per request, in order.

    Args:
        supported: For each request kind of the fake, the fault kinds it can play.
    """

    def __init__(self, supported: Mapping[str, frozenset[str]]) -> None:
        self._supported = dict(supported)
        self._queues: dict[str, list[Fault]] = {kind: [] for kind in supported}
        self._released = asyncio.Event()
        self.fired: list[FiredFault] = []
        """Every fault taken so far, in order."""

    @property
    def request_kinds(self) -> list[str]:
        """The request kinds this fake can fault."""
        return sorted(self._supported)

    def add(self, request: str, fault: Fault, *, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests of kind ``request``."""
        if request not in self._supported:
            raise ValueError(f"unknown request kind {request!r}; this fake faults "
                             f"{', '.join(self.request_kinds)}")
        if fault.kind not in self._supported[request]:
            raise ValueError(f"{request!r} requests cannot play a {fault.kind!r} fault; "
                             f"they support {', '.join(sorted(self._supported[request]))}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        self._queues[request].extend([fault] * times)

    def pending(self, request: str) -> int:
        """How many faults are still queued for ``request``."""
        return len(self._queues.get(request, []))

    def clear(self) -> None:
        """Drop every queued fault (the record of fired ones stays)."""
        for queue in self._queues.values():
            queue.clear()

    def take(self, request: str) -> Fault | None:
        """The next fault for a request of kind ``request`` (recorded as fired), or None."""
        queue = self._queues[request]
        if not queue:
            return None
        fault = queue.pop(0)
        self.fired.append(FiredFault(request, fault))
        return fault

    async def hang(self) -> None:
        """Block a hanging request until :meth:`release` (the fake is closing)."""
        await self._released.wait()

    def release(self) -> None:
        """End every hang: the fake is closing."""
        self._released.set()


def supports(*request_kinds: str, faults: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """``{kind: frozenset(faults)}`` for each of ``request_kinds``."""
    return {kind: frozenset(faults) for kind in request_kinds}
