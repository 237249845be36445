"""Patter's frame processors and telephony interceptors, each usable in any Pipecat pipeline."""

from patter.processors._echo import EchoReference
from patter.processors.agent_speech import AgentSpeech, SpeechFromFrames
from patter.processors.barge_in import BargeInGuard, barge_in_vad_params
from patter.processors.call_control import CallControl
from patter.processors.caller_mute import CallerInputMute
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.processors.dtmf import DtmfInjector, dtmf_text
from patter.processors.response_guard import Line, RecoveryLines, ResponseGuard

__all__ = [
    "AIDisclosure",
    "AgentSpeech",
    "BargeInGuard",
    "CallControl",
    "CallerInputMute",
    "DtmfInjector",
    "EchoReference",
    "Line",
    "PlayoutCheckpointFrame",
    "PlayoutCheckpointProbe",
    "RecoveryLines",
    "ResponseGuard",
    "SpeechFromFrames",
    "barge_in_vad_params",
    "dtmf_text",
]
