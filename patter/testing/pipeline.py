"""Run Pipecat processors in a real pipeline and watch the frames that come out of it.

For unit tests of a processor (Patter's or your own) and for driving vendor services
against the loopback fakes::

    async with running_pipeline([DtmfInjector()]) as p:
        await p.send(InputDTMFFrame(KeypadEntry.ONE))
        await p.wait_for(lambda: p.down(LLMMessagesAppendFrame))
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from patter._pipecat import (
    BaseObserver,
    EndFrame,
    Frame,
    FrameDirection,
    FrameProcessor,
    FramePushed,
    Pipeline,
    PipelineParams,
    PipelineWorker,
    StartFrame,
    WorkerRunner,
)

F = TypeVar("F", bound=Frame)


class FrameRecorder(FrameProcessor):
    """Passes frames on and remembers those travelling in ``direction``."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__()
        self._direction = direction
        self.frames: list[Frame] = []
        self.changed = asyncio.Condition()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Record the frame if it goes our way, then forward it."""
        await super().process_frame(frame, direction)
        if direction == self._direction and not isinstance(frame, StartFrame):
            self.frames.append(frame)
            async with self.changed:
                self.changed.notify_all()
        await self.push_frame(frame, direction)


class PushLog(BaseObserver):
    """Observer remembering every (source processor, frame) push."""

    def __init__(self) -> None:
        super().__init__()
        self.pushes: list[tuple[FrameProcessor, Frame]] = []
        self.changed = asyncio.Condition()

    async def on_push_frame(self, data: FramePushed) -> None:
        """Remember one push."""
        self.pushes.append((data.source, data.frame))
        async with self.changed:
            self.changed.notify_all()


class Harness:
    """A running pipeline ``[source, *processors, sink]`` with frame waiting helpers.

    ``downstream`` records what reaches the end of the pipeline, ``upstream`` what
    comes back to its start.
    """

    def __init__(self, worker: PipelineWorker, source: FrameRecorder, sink: FrameRecorder,
                 log: PushLog) -> None:
        self.worker = worker
        self.upstream = source
        self.downstream = sink
        self.log = log

    async def send(self, *frames: Frame) -> None:
        """Queue frames at the start of the pipeline."""
        for frame in frames:
            await self.worker.queue_frame(frame)

    def down(self, kind: type[F]) -> list[F]:
        """Downstream frames of type ``kind`` received so far."""
        return [f for f in self.downstream.frames if isinstance(f, kind)]

    def up(self, kind: type[F]) -> list[F]:
        """Upstream frames of type ``kind`` received so far."""
        return [f for f in self.upstream.frames if isinstance(f, kind)]

    def pushed_by(self, processor: FrameProcessor, kind: type[F]) -> list[F]:
        """Frames of type ``kind`` that ``processor`` pushed (either direction)."""
        return [f for src, f in self.log.pushes if src is processor and isinstance(f, kind)]

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, re-checked whenever either end sees a frame."""
        async def watch(changed: asyncio.Condition) -> None:
            async with changed:
                await changed.wait_for(predicate)

        conditions = (self.downstream.changed, self.upstream.changed, self.log.changed)
        tasks = [asyncio.create_task(watch(c)) for c in conditions]
        try:
            done, _ = await asyncio.wait(tasks, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not done:
            raise TimeoutError("pipeline condition not reached; downstream frames: "
                               f"{[type(f).__name__ for f in self.downstream.frames]}, "
                               f"upstream: {[type(f).__name__ for f in self.upstream.frames]}")


@asynccontextmanager
async def running_pipeline(processors: Sequence[FrameProcessor], *, audio_in_rate: int = 16000,
                           audio_out_rate: int = 24000, **worker_kwargs: Any,
                           ) -> AsyncIterator[Harness]:
    """Run ``processors`` in a ``PipelineWorker``; ends it with an ``EndFrame`` on exit."""
    source = FrameRecorder(FrameDirection.UPSTREAM)
    sink = FrameRecorder(FrameDirection.DOWNSTREAM)
    log = PushLog()
    worker = PipelineWorker(
        Pipeline([source, *processors, sink]),
        cancel_on_idle_timeout=False,
        observers=[log],
        params=PipelineParams(audio_in_sample_rate=audio_in_rate,
                              audio_out_sample_rate=audio_out_rate),
        **worker_kwargs,
    )
    started = asyncio.Event()

    async def _on_started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    worker.add_event_handler("on_pipeline_started", _on_started)

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(started.wait(), timeout=5.0)
        yield Harness(worker, source, sink, log)
        await worker.queue_frame(EndFrame())
        await asyncio.wait_for(asyncio.shield(run), timeout=10.0)
    finally:
        if not run.done():
            await worker.cancel()
            await asyncio.wait_for(run, timeout=5.0)
