"""Run a ``PatterServer`` under uvicorn in the background: start, wait, stop gracefully."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import uvicorn

from patter._log import get_logger
from patter._server import PatterServer
from patter._websocket_protocol import BatchedReadsWebSocketProtocol
from patter.errors import PatterConfigError

logger = get_logger(__name__)

SHUTDOWN_TIMEOUT_S = 5


class _Uvicorn(uvicorn.Server):
    """uvicorn without its signal handling: ``serve()`` drains on SIGINT and SIGTERM itself
    (``patter._drain``), where uvicorn would close every live call's WebSocket at once."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handler (uvicorn's documented hook for its signal handling)."""
        yield


class ServerRunner:
    """Serves one ``PatterServer``'s app on ``host:port`` until ``stop()``.

    Signals do not stop it: ``serve()`` turns SIGINT and SIGTERM into a drain, then stops it.
    """

    def __init__(self, server: PatterServer, *, host: str, port: int) -> None:
        self.server = server
        self.host = host
        self.port = port
        self._uv = _Uvicorn(
            uvicorn.Config(
                server.app, host=host, port=port, log_level="warning", lifespan="off",
                ws=BatchedReadsWebSocketProtocol, ws_max_size=server.config.max_message_bytes,
                timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen; raises ``PatterConfigError`` if ``host:port`` cannot be used."""
        self._task = asyncio.create_task(self._serve())
        while not self._uv.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
            raise PatterConfigError(f"the server stopped while starting on {self.host}:{self.port}")

    async def wait(self) -> None:
        """Return when the server has stopped (cancelling this wait does not stop it)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop listening, let open connections close (bounded), then close the REST client."""
        task, self._task = self._task, None
        if task is not None:
            self._uv.should_exit = True
            done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_TIMEOUT_S * 2)
            if not done:
                logger.warning("server did not stop in time; cancelling it")
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.server.rest.close()

    async def _serve(self) -> None:
        try:
            await self._uv.serve()
        except SystemExit:  # uvicorn exits the process when it cannot bind
            raise PatterConfigError(
                f"could not listen on {self.host}:{self.port} (is the port in use?): "
                "pass another port, e.g. serve(agent, port=8001)."
            ) from None
