"""User callbacks: sync or async, run so that they never hold up or kill the call.

An exception is logged and the call goes on; an async callback still running after
:data:`CALLBACK_TIMEOUT_S` is cut off and logged. Within a call, :class:`CallbackQueue`
delivers the callbacks in order from a task of its own, so the call's audio path never
waits on user code. (A sync callback runs on the event loop: keep it quick.)
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patter._events import Event
from patter._log import get_logger

logger = get_logger(__name__)

CALLBACK_TIMEOUT_S = 5.0
"""Longest an async user callback may run (``on_call_end`` too) before it is cut off."""

Callback = Callable[[Event], Any]


@dataclass(frozen=True)
class Callbacks:
    """The callbacks of ``serve()`` / ``call()``; any of them may be None."""

    on_call_start: Callback | None = None
    on_call_end: Callback | None = None
    on_transcript: Callback | None = None
    on_message: Callback | None = None
    on_recording: Callback | None = None

    def merged(self, override: Callbacks) -> Callbacks:
        """These callbacks, with every callback set in ``override`` taking precedence."""
        return Callbacks(
            **{
                name: getattr(override, name) or getattr(self, name)
                for name in self.__dataclass_fields__
            }
        )


async def fire(callback: Callback | None, event: Event) -> None:
    """Run ``callback(event)``, awaiting it if async for at most :data:`CALLBACK_TIMEOUT_S`;
    log (never raise) its exceptions and a cut-off."""
    if callback is None:
        return
    limit = asyncio.timeout(CALLBACK_TIMEOUT_S)
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            async with limit:
                await result
    except TimeoutError:
        if not limit.expired():
            _log_raised(callback)
            return
        logger.error("callback cut off: still running after the time limit; the call goes on",
                     extra={"callback": _name(callback), "limit_s": CALLBACK_TIMEOUT_S})
    except Exception:
        _log_raised(callback)


def _log_raised(callback: Callback) -> None:
    """Log the exception being handled as raised by ``callback``."""
    logger.exception("callback raised; the call goes on", extra={"callback": _name(callback)})


class CallbackQueue:
    """One call's callbacks, run in the order posted by a task of their own (each through
    :func:`fire`): posting never waits, so the call never waits on user code."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[tuple[Callback, Event]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def post(self, callback: Callback | None, event: Event) -> None:
        """Queue ``callback(event)`` after the callbacks posted before it."""
        if callback is None:
            return
        self._pending.put_nowait((callback, event))
        if self._task is None:
            self._task = asyncio.create_task(self._deliver(), name="patter-callbacks")

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait for the posted callbacks to run, at most ``timeout_s`` (default
        :data:`CALLBACK_TIMEOUT_S`); any still pending then are dropped, logged."""
        try:
            async with asyncio.timeout(CALLBACK_TIMEOUT_S if timeout_s is None else timeout_s):
                await self._pending.join()
        except TimeoutError:
            logger.error("callbacks still pending at the end of the call were dropped",
                         extra={"pending": self._pending.qsize()})
        finally:
            if self._task is not None:
                self._task.cancel()
                self._task = None

    async def _deliver(self) -> None:
        while True:
            callback, event = await self._pending.get()
            try:
                await fire(callback, event)
            finally:
                self._pending.task_done()


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", type(callback).__name__)
