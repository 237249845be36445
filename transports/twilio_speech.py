"""The agent's voice on one Twilio Media Stream, as the barge-in guard controls it."""

from __future__ import annotations

from patter.processors import AgentSpeech, EchoReference
from patter.transports.playout import PlayoutLedger


class TwilioAgentSpeech(AgentSpeech):
    """``AgentSpeech`` for the Twilio transport: speaking and pausing by its mark ledger.

    A pause stops the output sending interruptible audio (Twilio plays out the ~0.1 s it
    holds); the AI disclosure is never paused. The echo reference is fed by the output
    with each chunk it sends, at the positions the marks tell.
    """

    def __init__(self, ledger: PlayoutLedger) -> None:
        self._ledger = ledger
        self.echo: EchoReference | None = None
        """The reference the output feeds with the agent audio it sends (if any)."""

    @property
    def speaking(self) -> bool:
        """Whether agent audio is unheard at Twilio or held back by a pause."""
        return self._ledger.speaking

    @property
    def paused(self) -> bool:
        """Whether interruptible audio is held back."""
        return self._ledger.paused

    @property
    def stream_closed(self) -> bool:
        """Whether the Media Stream is gone."""
        return self._ledger.stream_closed

    def pause(self) -> bool:
        """Stop sending interruptible audio; False while the disclosure plays."""
        return self._ledger.pause()

    async def resume(self) -> None:
        """Let held-back audio go on, exactly where it stopped."""
        await self._ledger.resume()

    def feed_echo(self, reference: EchoReference) -> None:
        """Feed ``reference`` with the audio sent from now on, placed by the marks."""
        reference.follow(self._ledger)
        self.echo = reference
