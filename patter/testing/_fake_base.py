"""Shared plumbing of the loopback vendor fakes: serving, change notification, small helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from patter.testing._lifecycle import AsyncStartClose
from patter.testing._server import LoopbackServer

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


class FakeService(AsyncStartClose):
    """Base class of the vendor fakes: serves ``self.app`` on a loopback port.

    Subclasses build a FastAPI ``app`` and call :meth:`_changed` whenever they
    record something, so tests can ``await fake.wait_until(predicate)`` instead
    of sleeping.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
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
        """Stop serving; open connections are closed."""
        if self._server is not None:
            server, self._server = self._server, None
            await server.close()


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

