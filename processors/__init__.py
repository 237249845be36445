"""Patter's frame processors and telephony interceptors, each usable in any Pipecat pipeline."""

from patter.processors.call_control import CallControl
from patter.processors.caller_mute import CallerInputMute
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.processors.dtmf import DtmfInjector, dtmf_text

__all__ = [
    "AIDisclosure",
    "CallControl",
    "CallerInputMute",
    "DtmfInjector",
    "PlayoutCheckpointFrame",
    "PlayoutCheckpointProbe",
    "dtmf_text",
]
