"""LoopbackServer, which every fake vendor runs on, behaves on the wire like a vendor's server."""

from __future__ import annotations

import socket
from asyncio import selector_events
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from patter.testing._server import LoopbackServer


async def _hello(_request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_accepted_connections_have_nagle_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A vendor's front end sends without Nagle's algorithm (TCP_NODELAY); so must the fakes.

    With it on, a streamed reply's first chunk waited for the client's delayed ACK of the
    headers (40 ms on a reused connection), which the benchmarks then counted as Patter's.
    """
    nodelay_by_local_port: dict[int, int] = {}
    original_init = selector_events._SelectorSocketTransport.__init__

    def recording_init(self: Any, loop: Any, sock: socket.socket, *args: Any,
                       **kwargs: Any) -> None:
        original_init(self, loop, sock, *args, **kwargs)
        nodelay_by_local_port[sock.getsockname()[1]] = sock.getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY
        )

    monkeypatch.setattr(selector_events._SelectorSocketTransport, "__init__", recording_init)
    async with LoopbackServer(Starlette(routes=[Route("/", _hello)])) as server:
        async with httpx.AsyncClient() as client:
            assert (await client.get(server.url + "/")).text == "hello"
    assert nodelay_by_local_port.get(server.port) == 1  # the server's end of the connection
