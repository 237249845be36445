"""User callbacks: sync or async, run so that an exception never kills the call."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from patter._log import get_logger
from patter.events import Event

logger = get_logger(__name__)

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
    """Run ``callback(event)``, awaiting it if async; log (never raise) its exceptions."""
    if callback is None:
        return
    try:
        result = callback(event)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("callback raised; the call goes on", extra={"callback": _name(callback)})


def _name(callback: Callback) -> str:
    return getattr(callback, "__qualname__", type(callback).__name__)
