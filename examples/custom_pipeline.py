"""A call pipeline composed by hand: Patter's processors with one of your own in the chain.

Every call runs a chain of named Pipecat processors (``transport_in → response_watch →
barge_in → disclosure_gate → dtmf → stt → user_context → llm → tts → …``). ``customize_pipeline``
gets that chain for each call and may insert, replace or reorder stages; here a processor
of our own, ``TranscriptLogger``, goes right after speech-to-text. Patter's processors
(``patter.processors``, e.g. ``DtmfInjector``) work in a plain Pipecat pipeline too.
Settings come from the environment.

Try it without a number::

    patter simulate examples/custom_pipeline.py:agent --say "What are your opening hours?"

With a real number: ``patter serve examples/custom_pipeline.py:agent``.
"""

import asyncio

from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from patter import CallPipeline, Patter


class TranscriptLogger(FrameProcessor):
    """Prints each final transcript and passes every frame on unchanged."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, TranscriptionFrame):
            print(f"[custom stage] caller said: {frame.text}", flush=True)
        await self.push_frame(frame, direction)


def add_transcript_logger(pipeline: CallPipeline) -> None:
    """Insert our processor right after speech-to-text."""
    pipeline.insert_after("stt", "transcript_logger", TranscriptLogger())
    print("stages:", " → ".join(pipeline.names), flush=True)


phone = Patter()

agent = phone.agent(
    "You are a shop assistant. Our hours are nine to five, Monday to Saturday.",
    first_message="Hello! How can I help?",
    customize_pipeline=add_transcript_logger,
)


async def main() -> None:
    await phone.serve(agent, port=8000)


if __name__ == "__main__":
    asyncio.run(main())
