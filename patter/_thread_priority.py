"""Model inference threads at a lower CPU priority than the event loop that paces the calls.

Smart-turn's inference keeps every core busy for ~0.2-0.3 s per turn. At the same priority,
the event loop then waits for a core like any other thread, and every live call's outbound
audio is sent late meanwhile: with 10 calls on 2 cores, Twilio got agent audio up to 0.4-1.4 s
behind its schedule (p99), against 0.07-0.16 s with the inference threads niced. Lowering the
priority of a thread is an OS call no maintained library wraps for another runtime's threads
(ONNX Runtime starts its worker pool itself and names no thread), hence this module.

Linux only (threads have their own nice value there); elsewhere these are no-ops. Lowering a
priority never needs privileges.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

from patter._log import get_logger

logger = get_logger(__name__)

NICE_INCREMENT = 10
"""How much nicer an inference thread is than it was started (than the event loop): Linux then
gives it about a tenth of a core the loop wants, and every core the loop leaves idle."""

MAX_NICE = 19
"""The lowest priority Linux has: a thread already near it goes no further."""

_TASKS = "/proc/self/task"


def lower_current_thread_priority() -> None:
    """Lower the calling thread's priority by ``NICE_INCREMENT`` (e.g. as a thread pool's
    initializer)."""
    _lower({threading.get_native_id()})


@contextlib.contextmanager
def native_threads_at_background_priority() -> Iterator[None]:
    """Threads started in this block outside Python's ``threading`` (a runtime's own worker
    pool, such as the one ONNX Runtime starts with a session) run ``NICE_INCREMENT`` lower."""
    before = _thread_ids()
    yield
    python_threads = {thread.native_id for thread in threading.enumerate()
                      if thread.native_id is not None}
    _lower(_thread_ids() - before - python_threads)


def _thread_ids() -> set[int]:
    if sys.platform != "linux":
        return set()
    return {int(tid) for tid in os.listdir(_TASKS)}


def _lower(thread_ids: set[int]) -> None:
    if sys.platform != "linux":
        return
    for tid in thread_ids:
        try:
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(nice + NICE_INCREMENT, MAX_NICE))
        except OSError as error:  # the thread has ended, or a sandbox forbids it
            logger.debug("thread priority left as it is", extra={"error": str(error)})
