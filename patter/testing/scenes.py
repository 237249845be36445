"""The restaurant scene: a caller asks a question and the agent gives a long reply to talk
over. Shared by the barge-in tests and ``benchmarks/barge_in.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from patter._events import Event
from patter.testing.fake_twilio import FakeCall
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for
from patter.testing.phone import SimulatedPhone

QUESTION = "Tell me about the restaurant."
INTERRUPTION = "Do you have vegan dishes?"
SENTENCES = [
    "Our restaurant opens at five in the evening every day of the week.",
    "We serve fresh pasta, grilled fish and a wide selection of local wines.",
    "On Fridays there is live jazz music from seven until ten at night.",
]
REPLY = " ".join(SENTENCES)
"""The agent's long answer to QUESTION (three sentences, ~12 s of speech)."""
ANSWER = "Yes, we have several vegan dishes."
"""The agent's answer to INTERRUPTION."""


def proportional_words(played_ms: float) -> int:
    """Words of REPLY a caller heard after ``played_ms`` of it from the fake OpenAI TTS,
    each sentence's words spread evenly over its audio."""
    count = 0
    for sentence in SENTENCES:
        duration_ms = len(openai_speech_at_8k(sentence)) / 16
        words = len(sentence.split())
        if played_ms < duration_ms:
            return count + int(words * played_ms / duration_ms)
        count += words
        played_ms -= duration_ms
    return count


def script(world: LoopbackWorld, *, next_transcript: str = INTERRUPTION,
           next_reply: str = ANSWER) -> None:
    """What the fake STT (OpenAI or Deepgram) and LLM answer in one scene (whatever an
    earlier scene left is dropped): QUESTION → REPLY, then ``next_transcript`` →
    ``next_reply``."""
    world.openai.replies.clear()
    world.openai.transcripts[:] = [QUESTION, next_transcript]
    world.deepgram.transcripts[:] = [QUESTION, next_transcript]
    world.openai.reply_with(REPLY)
    world.openai.reply_with(next_reply)


@dataclass
class Scene:
    """A call whose agent is speaking the long REPLY."""

    call: FakeCall
    phone: SimulatedPhone
    before: int
    """Bytes of agent audio the caller had heard before the reply."""
    ended: list[Event]

    async def history_at_end(self) -> list[dict[str, str]]:
        """Hang up and return the history ``on_call_end`` delivered."""
        await self.phone.hang_up()
        await wait_for(lambda: bool(self.ended), timeout=20)
        return list(self.ended[0]["transcript"])


async def reply_playing(world: LoopbackWorld, *, next_transcript: str = INTERRUPTION,
                        next_reply: str = ANSWER, **patter: Any) -> Scene:
    """Serve an agent, call it and ask QUESTION; returns once the long REPLY is requested.

    ``patter`` goes to ``world.patter()`` (e.g. ``tts="elevenlabs"``).
    """
    script(world, next_transcript=next_transcript, next_reply=next_reply)
    phone = world.patter(**patter)
    ended: list[Event] = []
    await world.serve(phone, phone.agent("You are a restaurant host."), on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None, call.errors
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    scene = Scene(call, call.phone, len(call.phone.heard_pcm()), ended)
    call.phone.say_text(QUESTION)
    await wait_for(lambda: len(world.openai.chat_requests) == 1, timeout=30)
    return scene
