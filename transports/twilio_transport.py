"""The Twilio Media Streams transport: an input and an output sharing one playout ledger.

The ledger is the transport's own: the input records Twilio's mark echoes in it, the
output paces and holds by it. Outside, the agent's voice is ``speech`` (``AgentSpeech``).
"""

from __future__ import annotations

from patter._pipecat import BaseTransport, TransportParams
from patter.audio import PHONE_RATE_HZ
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_input import StreamEndCallback, TwilioMediaInput
from patter.transports.twilio_output import InterruptedCallback, TwilioMediaOutput
from patter.transports.twilio_speech import TwilioAgentSpeech


def phone_transport_params(*, chunk_ms: int = 40) -> TransportParams:
    """Transport settings for an 8 kHz phone line: no end silence (marks tell when done)."""
    return TransportParams(
        audio_in_enabled=True,
        audio_in_sample_rate=PHONE_RATE_HZ,
        audio_out_enabled=True,
        audio_out_sample_rate=PHONE_RATE_HZ,
        audio_out_10ms_chunks=max(1, chunk_ms // 10),
        audio_out_end_silence_secs=0,
    )


class TwilioMediaTransport(BaseTransport):
    """``input()`` and ``output()`` processors for one Twilio Media Stream.

    ``ledger`` (optional) sets the pacing (``PlayoutLedger(lead_ms=...)``); give a
    ``BargeInGuard`` this transport's ``speech``.
    """

    def __init__(
        self,
        socket: MediaStreamSocket,
        *,
        on_stream_end: StreamEndCallback,
        on_interrupted: InterruptedCallback | None = None,
        ledger: PlayoutLedger | None = None,
        params: TransportParams | None = None,
    ) -> None:
        super().__init__()
        ledger = ledger or PlayoutLedger()
        params = params or phone_transport_params()
        self._input = TwilioMediaInput(socket, ledger, params, on_stream_end=on_stream_end)
        self._output = TwilioMediaOutput(socket, ledger, params, on_interrupted=on_interrupted)

    @property
    def speech(self) -> TwilioAgentSpeech:
        """The agent's voice on this stream: what a ``BargeInGuard`` pauses and resumes."""
        return self._output.speech

    def input(self) -> TwilioMediaInput:
        """The processor that reads the stream (put it first in the pipeline)."""
        return self._input

    def output(self) -> TwilioMediaOutput:
        """The processor that writes the stream (put it after TTS)."""
        return self._output
