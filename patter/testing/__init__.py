"""Loopback test doubles for Patter: vendor fakes with fault injection, the simulated phone and
the world that wires them to a Patter server (`LoopbackWorld`), and test audio helpers."""

from patter.testing.fake_deepgram import FakeDeepgram
from patter.testing.fake_elevenlabs import FakeElevenLabs
from patter.testing.fake_openai import FakeOpenAI
from patter.testing.fake_twilio import FakeCall, FakeTwilio, OutboundScript
from patter.testing.faults import Fault, Faults, FiredFault
from patter.testing.harness import LoopbackWorld
from patter.testing.phone import SimulatedPhone

__all__ = [
    "FakeCall",
    "FakeDeepgram",
    "FakeElevenLabs",
    "FakeOpenAI",
    "FakeTwilio",
    "Fault",
    "Faults",
    "FiredFault",
    "LoopbackWorld",
    "OutboundScript",
    "SimulatedPhone",
]
