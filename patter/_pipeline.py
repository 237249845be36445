"""The processor chain of a call, by name, so users can inspect, insert, replace or reorder.

Default order (each name maps to one Pipecat ``FrameProcessor``)::

    transport_in → response_watch → barge_in → disclosure_gate → dtmf → stt → user_context
    → llm → tts → response_voice → disclosure_player → transport_out → checkpoints
    → assistant_context

Pass ``agent(customize_pipeline=fn)``; ``fn(pipeline)`` runs for each call before it starts.
"""

from __future__ import annotations

from collections.abc import Iterator

from patter._pipecat import FrameProcessor
from patter.errors import PatterConfigError


class CallPipeline:
    """An ordered, named list of frame processors for one call."""

    def __init__(self, stages: list[tuple[str, FrameProcessor]]) -> None:
        self._stages = list(stages)

    @property
    def names(self) -> list[str]:
        """Stage names in order."""
        return [name for name, _ in self._stages]

    def __getitem__(self, name: str) -> FrameProcessor:
        return self._stages[self._index(name)][1]

    def __iter__(self) -> Iterator[FrameProcessor]:
        return (processor for _, processor in self._stages)

    def insert_before(self, anchor: str, name: str, processor: FrameProcessor) -> None:
        """Add ``processor`` as stage ``name`` just before ``anchor``."""
        self._check_new(name)
        self._stages.insert(self._index(anchor), (name, processor))

    def insert_after(self, anchor: str, name: str, processor: FrameProcessor) -> None:
        """Add ``processor`` as stage ``name`` just after ``anchor``."""
        self._check_new(name)
        self._stages.insert(self._index(anchor) + 1, (name, processor))

    def replace(self, name: str, processor: FrameProcessor) -> None:
        """Swap the processor of stage ``name`` (e.g. a different STT service)."""
        self._stages[self._index(name)] = (name, processor)

    def processors(self) -> list[FrameProcessor]:
        """The processors in order, ready for ``pipecat.pipeline.pipeline.Pipeline``."""
        return list(self)

    def _index(self, name: str) -> int:
        for index, (stage, _) in enumerate(self._stages):
            if stage == name:
                return index
        raise PatterConfigError(
            f"no pipeline stage named {name!r}; stages: {', '.join(self.names)}."
        )

    def _check_new(self, name: str) -> None:
        if name in self.names:
            raise PatterConfigError(f"pipeline stage {name!r} already exists; pick another name.")
