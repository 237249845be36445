"""Twilio Media Streams and REST transports: what runs in production."""

from patter.transports.media_stream import MediaStreamSocket, StreamRejected, StreamStart
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_input import TwilioMediaInput
from patter.transports.twilio_output import TwilioMediaOutput
from patter.transports.twilio_rest import TwilioRest
from patter.transports.twilio_speech import TwilioAgentSpeech
from patter.transports.twilio_transport import TwilioMediaTransport, phone_transport_params

__all__ = [
    "MediaStreamSocket",
    "PlayoutLedger",
    "StreamRejected",
    "StreamStart",
    "TwilioAgentSpeech",
    "TwilioMediaInput",
    "TwilioMediaOutput",
    "TwilioMediaTransport",
    "TwilioRest",
    "phone_transport_params",
]
