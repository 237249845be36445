"""Run an ASGI app on a free loopback port inside the current event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn

from patter.testing._lifecycle import AsyncStartClose

KEEP_ALIVE_S = 75
"""Idle keep-alive of HTTP connections (uvicorn's default, 5 s, is far shorter than the
vendors' own front ends keep them)."""


class LoopbackServer(AsyncStartClose):
    """Serve an ASGI app on ``127.0.0.1`` (port 0 picks a free one) until closed.

    Usage::

        async with LoopbackServer(app) as server:
            print(server.url)  # "http://127.0.0.1:54321"

    ``ws_protocol`` is uvicorn's ``ws`` setting: a protocol name, ``"auto"`` (uvicorn's
    choice), or a protocol class such as ``patter._websocket_protocol``'s.
    """

    def __init__(
        self,
        app: Any,
        *,
        port: int = 0,
        ws_max_size: int = 16 * 1024 * 1024,
        ws_protocol: type[asyncio.Protocol] | str = "auto",
    ) -> None:
        self._app = app
        self._requested_port = port
        self._ws_max_size = ws_max_size
        self._ws_protocol = ws_protocol
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """Base HTTP URL of the running server, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base WebSocket URL of the running server, without a trailing slash."""
        return f"ws://127.0.0.1:{self.port}"

    @property
    def connections(self) -> set[asyncio.Protocol]:
        """The open connections, as uvicorn's protocol objects (for tests that look inside)."""
        return set(self._server.server_state.connections) if self._server else set()

    async def start(self) -> None:
        """Bind the socket and start serving; returns once the server accepts connections."""
        # IPPROTO_TCP named, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
        # sockets that say they are TCP, as a server binding its own port does. With Nagle on,
        # a streamed response's first chunk waited for the ACK of its headers (40 ms).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            lifespan="off",
            ws_max_size=self._ws_max_size,
            ws=self._ws_protocol,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        self._server = uvicorn.Server(config)
        # A fake lives inside a test or a demo: signals belong to the host process.
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        """Stop serving and wait for open connections to close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except TimeoutError:
            self._server.force_exit = True
            await self._task
        self._server = None
        self._task = None

