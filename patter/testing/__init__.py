"""Loopback test doubles for Patter: vendor fakes, their fault injection, test audio helpers."""

from patter.testing.fake_deepgram import FakeDeepgram
from patter.testing.fake_elevenlabs import FakeElevenLabs
from patter.testing.fake_openai import FakeOpenAI
from patter.testing.fake_twilio import FakeCall, FakeTwilio, OutboundScript
from patter.testing.faults import Fault, Faults, FiredFault

__all__ = [
    "FakeCall",
    "FakeDeepgram",
    "FakeElevenLabs",
    "FakeOpenAI",
    "FakeTwilio",
    "Fault",
    "Faults",
    "FiredFault",
    "OutboundScript",
]
