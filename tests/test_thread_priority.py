"""Inference threads yield to the event loop: smart-turn's thread and ONNX Runtime's workers
run at a lower priority than the thread that started them, other threads are left alone."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from patter._shared_models import _smart_turn_session, _smart_turn_thread
from patter._thread_priority import (
    MAX_NICE,
    NICE_INCREMENT,
    native_threads_at_background_priority,
)

pytestmark = pytest.mark.skipif(sys.platform != "linux",
                                reason="threads have a nice value of their own on Linux")


def nice_of(thread_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, thread_id)


def test_smart_turns_inference_threads_run_below_the_event_loop() -> None:
    loop_nice = nice_of(threading.get_native_id())
    background_nice = min(loop_nice + NICE_INCREMENT, MAX_NICE)
    _smart_turn_session()  # loaded once per process: its worker pool starts here, or did
    python_threads = {thread.native_id for thread in threading.enumerate()}
    native_nices = [nice_of(int(tid)) for tid in os.listdir("/proc/self/task")
                    if int(tid) not in python_threads]

    smart_turn_nice = _smart_turn_thread().submit(
        lambda: nice_of(threading.get_native_id())).result()

    assert smart_turn_nice == background_nice
    if (os.cpu_count() or 1) > 1:  # one thread needs no pool of workers
        assert background_nice in native_nices
    assert nice_of(threading.get_native_id()) == loop_nice


def test_python_threads_started_alongside_keep_their_priority() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    with native_threads_at_background_priority():
        worker.start()
    try:
        assert worker.native_id is not None
        assert nice_of(worker.native_id) == nice_of(threading.get_native_id())
    finally:
        release.set()
        worker.join()
