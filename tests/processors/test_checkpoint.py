"""PlayoutCheckpointFrame / PlayoutCheckpointProbe: learn when earlier agent audio was heard."""

from __future__ import annotations

from typing import Any

from patter._pipecat import TTSSpeakFrame
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe


def test_a_checkpoint_survives_interruptions() -> None:
    assert PlayoutCheckpointFrame(label="x").interruptible is False


async def test_the_probe_resolves_checkpoints_and_passes_everything_else(pipeline: Any) -> None:
    checkpoint = PlayoutCheckpointFrame(label="transfer_call")
    before, after = TTSSpeakFrame("before"), TTSSpeakFrame("after")
    async with pipeline([PlayoutCheckpointProbe()]) as p:
        assert not checkpoint.reached.is_set()
        await p.send(before, checkpoint, after)
        await p.wait_for(lambda: len(p.down(TTSSpeakFrame)) == 2)
    assert checkpoint.reached.is_set()
    assert p.down(TTSSpeakFrame) == [before, after]
    assert p.down(PlayoutCheckpointFrame) == []
