"""The agent's voice as the barge-in guard sees it: is it speaking, pause it, let it go on."""

from __future__ import annotations

from typing import Protocol

from patter._pipecat import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    Frame,
    InterruptionFrame,
)
from patter.processors._echo import EchoReference


class AgentSpeech(Protocol):
    """What the barge-in guard needs from whatever plays the agent's voice.

    The Twilio transport provides one (``TwilioMediaTransport.speech``), driven by
    Twilio's marks. Without one, the guard uses ``SpeechFromFrames``.
    """

    @property
    def speaking(self) -> bool:
        """Whether agent audio is still to be heard (playing, queued or held back)."""
        ...

    @property
    def paused(self) -> bool:
        """Whether a pause holds the agent's audio back (a cut ends it)."""
        ...

    def pause(self) -> bool:
        """Stop the agent's audio going out, keeping it; False if it may not be paused now."""
        ...

    async def resume(self) -> None:
        """Let paused audio go on, exactly where it stopped."""
        ...

    def feed_echo(self, reference: EchoReference) -> None:
        """Feed ``reference`` with the agent audio played from now on (for echo detection)."""
        ...


class SpeechFromFrames:
    """``AgentSpeech`` for a plain Pipecat pipeline, from the frames the output transport
    sends: the agent speaks between ``BotStartedSpeakingFrame`` and
    ``BotStoppedSpeakingFrame`` (or an interruption). Nothing here can hold audio back,
    so a pause only marks the guard's state (an interruption still cuts the agent); no
    echo reference is fed.
    """

    def __init__(self) -> None:
        self.speaking = False
        self.paused = False

    def observe(self, frame: Frame) -> None:
        """Follow the agent's speech from ``frame`` (any direction)."""
        if isinstance(frame, BotStartedSpeakingFrame):
            self.speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.speaking = False
        elif isinstance(frame, InterruptionFrame):
            self.interrupted()

    def interrupted(self) -> None:
        """The bot was cut off: the output drops its audio."""
        self.speaking = self.paused = False

    def pause(self) -> bool:
        """Mark a pause (the audio itself cannot be held back here)."""
        self.paused = True
        return True

    async def resume(self) -> None:
        """End the pause."""
        self.paused = False

    def feed_echo(self, reference: EchoReference) -> None:
        """No agent audio is known here: ``reference`` stays empty."""
