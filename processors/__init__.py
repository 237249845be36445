"""Patter's frame processors and telephony interceptors, each usable in any Pipecat pipeline."""

from patter.processors.barge_in import BargeInGuard, barge_in_vad_params
from patter.processors.call_control import CallControl
from patter.processors.caller_mute import CallerInputMute
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.processors.dtmf import DtmfInjector, dtmf_text
from patter.processors.rule_agent import Rule, RuleAgent

__all__ = [
    "AIDisclosure",
    "BargeInGuard",
    "CallControl",
    "CallerInputMute",
    "DtmfInjector",
    "PlayoutCheckpointFrame",
    "PlayoutCheckpointProbe",
    "Rule",
    "RuleAgent",
    "barge_in_vad_params",
    "dtmf_text",
]
