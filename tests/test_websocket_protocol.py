"""The server's WebSocket protocol reads on while a few messages wait, and pauses at the cap."""

from __future__ import annotations

import asyncio
import contextlib
import json

import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from patter._websocket_protocol import MAX_QUEUED_MESSAGES, BatchedReadsWebSocketProtocol
from patter.testing._server import LoopbackServer


class SlowReader:
    """A WebSocket endpoint that reads nothing until ``read`` is set, then everything."""

    def __init__(self) -> None:
        self.read = asyncio.Event()
        self.received: list[str] = []

    async def endpoint(self, websocket: WebSocket) -> None:
        """Accept, wait for ``read``, then read until the socket closes."""
        await websocket.accept()
        await self.read.wait()
        with contextlib.suppress(Exception):
            while True:
                self.received.append(await websocket.receive_text())


async def queued_after_sending(protocol: type[WebSocketsSansIOProtocol], messages: int
                               ) -> tuple[int, bool, SlowReader]:
    """Send ``messages`` one by one to an app that is not reading; what the server then
    holds for it (queued messages, whether it stopped reading), and the endpoint once it has
    read them all."""
    endpoint = SlowReader()
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint.endpoint)])
    async with LoopbackServer(app, ws_protocol=protocol) as server:
        async with websockets.connect(f"{server.ws_url}/ws") as client:
            for index in range(messages):
                await client.send(json.dumps({"event": "media", "index": index}))
                await asyncio.sleep(0.005)  # one read each, as a stream's 20 ms messages come
            await asyncio.sleep(0.3)
            (connection,) = server.connections
            assert isinstance(connection, WebSocketsSansIOProtocol)
            held = (connection.queue.qsize(), connection.read_paused)
            endpoint.read.set()
            for _ in range(100):
                if len(endpoint.received) == messages:
                    break
                await asyncio.sleep(0.02)
    return (*held, endpoint)


async def test_reads_on_while_fewer_than_the_cap_wait_where_uvicorn_pauses_at_one() -> None:
    queued, paused, endpoint = await queued_after_sending(BatchedReadsWebSocketProtocol, 5)
    assert (queued, paused) == (5, False)
    assert [json.loads(m)["index"] for m in endpoint.received] == list(range(5))

    queued, paused, _ = await queued_after_sending(WebSocketsSansIOProtocol, 5)
    assert (queued, paused) == (1, True)  # uvicorn's own: paused after every message


async def test_stops_reading_once_the_cap_is_queued_and_loses_nothing() -> None:
    sent = MAX_QUEUED_MESSAGES * 4
    queued, paused, endpoint = await queued_after_sending(BatchedReadsWebSocketProtocol, sent)
    assert paused
    assert queued == MAX_QUEUED_MESSAGES  # the rest waits in the kernel's buffers
    assert [json.loads(m)["index"] for m in endpoint.received] == list(range(sent))
