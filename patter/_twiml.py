"""The TwiML documents Patter answers with, built with the twilio SDK's VoiceResponse."""

from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

BUSY_MESSAGE = "Sorry, all our lines are busy right now. Please call again in a few minutes."


def stream_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Connect><Stream url>`` with ``<Parameter>``s, then ``<Hangup/>`` when it ends."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    response.hangup()
    return str(response)


def busy_twiml(message: str = BUSY_MESSAGE) -> str:
    """A short polite message, then hang up (no stream is opened)."""
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def transfer_twiml(number: str, *, caller_id: str, hold_music_url: str) -> str:
    """Play hold music, then dial ``number`` with the Patter number as caller ID."""
    response = VoiceResponse()
    response.play(hold_music_url)
    dial = Dial(caller_id=caller_id)
    dial.number(number)
    response.append(dial)
    return str(response)


def hangup_twiml() -> str:
    """Just hang up."""
    response = VoiceResponse()
    response.hangup()
    return str(response)
