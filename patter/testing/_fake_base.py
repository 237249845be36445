"""Shared plumbing of the loopback vendor fakes: serving, change notification, small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from patter.testing._lifecycle import AsyncStartClose
from patter.testing._server import LoopbackServer
from patter.testing.faults import Fault, Faults

#: Request headers that carry credentials and are never recorded.
SECRET_HEADERS = frozenset({"authorization", "xi-api-key", "api-key", "sec-websocket-protocol"})


def public_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The request headers with credential headers removed (names lower-cased)."""
    return {k.lower(): v for k, v in headers if k.lower() not in SECRET_HEADERS}


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Collapse (name, value) pairs to a dict keeping each name's first value."""
    result: dict[str, str] = {}
    for key, value in pairs:
        result.setdefault(key, value)
    return result


class CutStream(Response):
    """A streamed response that sends its headers and first body chunk, then ends the
    connection abruptly (no final chunk): a stream cut mid-answer."""

    def __init__(self, chunks: AsyncIterator[bytes], *, media_type: str) -> None:
        super().__init__(media_type=media_type)
        self._chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": [(b"content-type", str(self.media_type).encode())]})
        async for chunk in self._chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            break
        # Returning with the body incomplete makes the server close the connection.


class FakeService(AsyncStartClose):
    """Base class of the vendor fakes: serves ``self.app`` on a loopback port.

    Subclasses build a FastAPI ``app`` and call :meth:`_changed` whenever they
    record something, so tests can ``await fake.wait_until(predicate)`` instead
    of sleeping. ``faults`` (:class:`~patter.testing.faults.Faults`) holds the faults
    queued per request kind; handlers take them with :meth:`_take_fault`.
    """

    def __init__(self, app: Any, fault_kinds: Mapping[str, frozenset[str]]) -> None:
        self.app = app
        self.faults = Faults(fault_kinds)
        self._server: LoopbackServer | None = None
        self._condition = asyncio.Condition()

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running fake."""
        return self._require_server().url

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT`` of the running fake."""
        return self._require_server().ws_url

    def _require_server(self) -> LoopbackServer:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running; use 'async with'")
        return self._server

    async def start(self) -> None:
        """Start serving on a free loopback port."""
        if self._server is None:
            server = LoopbackServer(self.app)
            await server.start()
            self._server = server

    async def close(self) -> None:
        """Stop serving; open connections are closed (hanging requests let go first)."""
        self.faults.release()
        if self._server is not None:
            server, self._server = self._server, None
            await server.close()

    async def _take_fault(self, request: str) -> Fault | None:
        """The next fault queued for ``request`` (waiters are woken if one fires)."""
        fault = self.faults.take(request)
        if fault is not None:
            await self._changed()
        return fault

    async def _changed(self) -> None:
        """Wake up everyone blocked in :meth:`wait_until`."""
        async with self._condition:
            self._condition.notify_all()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true, re-checking after each recorded event.

        Raises ``TimeoutError`` if it is still false after ``timeout`` seconds.
        """
        async with self._condition:
            await asyncio.wait_for(self._condition.wait_for(predicate), timeout)

