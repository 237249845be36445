"""Stopping an instance without dropping a call: SIGTERM or SIGINT starts a drain.

On the first SIGTERM or SIGINT, ``serve()`` stops taking calls (``/readyz`` answers 503; a
new call's voice webhook gets busy TwiML, or a 503 that a balancer retries on another
instance), lets its live calls finish for up to ``drain_timeout_s``, hangs up whatever is
left (``ended_by="shutdown"``), delivers every ``on_call_end`` and returns, so the process
exits 0. A second signal cuts the wait short.

Patter, not uvicorn, handles these signals: ``ServerRunner`` turns off uvicorn's
``Server.capture_signals`` hook, since uvicorn's own shutdown closes every WebSocket at once,
which would cut every live call.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType, TracebackType
from typing import Any

from patter._calls import CallEntry
from patter._log import get_logger
from patter._server import PatterServer

logger = get_logger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RESCAN_S = 1.0
"""How often the drain looks again for calls (a stream may still come for a call answered
just before it began)."""


class StopSignals:
    """While entered in the main thread, the first SIGINT or SIGTERM sets ``requested`` and
    a second one ``hurried``; the previous handlers are back on exit. Elsewhere (a thread
    cannot receive signals) it does nothing: stop ``serve()`` by cancelling it."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.hurried = asyncio.Event()
        self._previous: dict[int, Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._loop = asyncio.get_running_loop()
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._note, signum)

    def _note(self, signum: int) -> None:
        first = not self.requested.is_set()
        logger.info(
            "stop signal: draining" if first else "second stop signal: hanging up now",
            extra={"signal": signal.Signals(signum).name},
        )
        (self.requested if first else self.hurried).set()


async def drain(server: PatterServer, *, timeout_s: float, hurried: asyncio.Event) -> None:
    """Take no new call, then wait until this instance's calls have ended, ``timeout_s``
    has passed or ``hurried`` is set. The caller then hangs up whatever is left."""
    server.start_draining()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    hurry = asyncio.ensure_future(hurried.wait())
    calls = await _unfinished(server)
    if calls:  # shown by `patter serve` too: a second signal hangs up at once
        logger.warning("draining: waiting for live calls to end (a second Ctrl-C or SIGTERM "
                       "hangs them up)", extra={"calls": len(calls), "timeout_s": timeout_s})
    try:
        while calls and not hurried.is_set() and (left := deadline - loop.time()) > 0:
            ends = [asyncio.ensure_future(entry.wait_end()) for entry in calls]
            await asyncio.wait(
                [*ends, hurry], timeout=min(left, RESCAN_S), return_when=asyncio.FIRST_COMPLETED
            )
            for end in ends:
                end.cancel()
            calls = await _unfinished(server)
    finally:
        hurry.cancel()
    if calls:
        logger.warning("drain cut short: hanging up the calls left", extra={"calls": len(calls)})
    else:
        logger.info("drained: no call left")


async def _unfinished(server: PatterServer) -> list[CallEntry]:
    """Calls this instance must see to their end: live ones, and placed ones still ringing."""
    live = await server.live_calls()
    ringing = [
        entry for entry in await server.registry.entries()
        if entry.placed and not entry.ended and entry not in live
    ]
    return live + ringing
