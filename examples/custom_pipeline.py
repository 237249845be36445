"""Compose a custom call pipeline from Patter's processors.

Two ways, both shown here:
1. ``agent(customize_pipeline=fn)``: Patter builds its default chain for each call and
   ``fn`` may insert, replace or reorder stages (here: a processor that logs every final
   transcript, and a Deepgram STT swapped in by config).
2. Patter's interceptors in your own Pipecat pipeline: ``DtmfInjector`` turns keypad
   presses into ``[DTMF: N]`` user messages wherever you place it.

Runs offline against the loopback fakes: ``python examples/custom_pipeline.py``.
"""

import asyncio

from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from patter import CallPipeline
from patter.processors import DtmfInjector
from patter.testing.harness import LoopbackWorld, wait_for


class TranscriptLogger(FrameProcessor):
    """Prints each final transcript and passes every frame on unchanged."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            print(f"  [custom stage] caller said: {frame.text}")
        await self.push_frame(frame, direction)


def add_transcript_logger(pipeline: CallPipeline) -> None:
    """Insert our processor right after speech-to-text."""
    pipeline.insert_after("stt", "transcript_logger", TranscriptLogger())
    print("  stages:", " → ".join(pipeline.names))


async def main() -> None:
    async with LoopbackWorld() as world:
        world.deepgram.transcripts.append("What are your opening hours?")
        world.openai.reply_with("We are open from nine to five.")
        phone = world.patter(stt="deepgram")
        agent = phone.agent(
            "You are a shop assistant.",
            first_message="Hello!",
            customize_pipeline=add_transcript_logger,
        )
        replies: list[str] = []
        await world.serve(phone, agent, on_message=lambda e: replies.append(e["text"]))
        call = await world.call_in()
        assert call.phone is not None
        await call.phone.wait_until_quiet(quiet_s=0.7, timeout=30)
        call.phone.say_text("What are your opening hours?")
        await wait_for(lambda: "We are open from nine to five." in replies, timeout=30)
        print("  agent replied:", replies[-1])
        await call.phone.hang_up()
    print("  a DtmfInjector works in any Pipecat pipeline too:", DtmfInjector())


if __name__ == "__main__":
    asyncio.run(main())
