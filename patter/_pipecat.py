"""Every Pipecat name Patter uses, imported in one place (pinned: pipecat-ai 1.14.0).

A Pipecat upgrade should only touch this module and ``patter/_vendors.py``. Vendor
services are imported lazily in ``vendors.py`` so a missing extra fails with a fix.
"""

from __future__ import annotations

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.audio.dtmf.types import KeypadEntry
from pipecat.audio.turn.smart_turn.base_smart_turn import BaseSmartTurn
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.utils import (
    create_file_resampler,
    create_stream_resampler,
    pcm_to_ulaw,
    ulaw_to_pcm,
)
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState
from pipecat.frames.frames import (
    AggregatedTextFrame,
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    DataFrame,
    EagerEndOfTurnCancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    FunctionCallFromLLM,
    FunctionCallResultProperties,
    FunctionCallsStartedFrame,
    InputAudioRawFrame,
    InputDTMFFrame,
    InterruptionFrame,
    LLMAssistantPushAggregationFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    LLMTextFrame,
    LLMUpdateSettingsFrame,
    OutputAudioRawFrame,
    StartFrame,
    SystemFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.service_switcher import ServiceSwitcher, ServiceSwitcherStrategyFailover
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import (
    AssistantTurnStoppedMessage,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
    UserTurnStoppedMessage,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import FunctionCallParams, LLMService
from pipecat.services.settings import LLMSettings
from pipecat.services.stt_service import STTService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_input import BaseInputTransport
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import BaseTransport, TransportParams
from pipecat.turns.empty_user_turn import DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT
from pipecat.turns.types import UserTurnSpeculation
from pipecat.turns.user_start.transcription_user_turn_start_strategy import (
    TranscriptionUserTurnStartStrategy,
)
from pipecat.turns.user_start.vad_user_turn_start_strategy import VADUserTurnStartStrategy
from pipecat.turns.user_stop.turn_analyzer_user_turn_stop_strategy import (
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.utils.errors import ErrorCategory
from pipecat.utils.http import AsyncHTTPClient, connection_limits
from pipecat.utils.string import TextPartForConcatenation, concatenate_aggregated_text
from pipecat.utils.utils import obj_id
from pipecat.workers.runner import WorkerRunner

__all__ = [
    "AggregatedTextFrame",
    "AsyncHTTPClient",
    "AssistantTurnStoppedMessage",
    "BaseInputTransport",
    "BaseObserver",
    "BaseOutputTransport",
    "BaseSmartTurn",
    "BaseTransport",
    "BotStartedSpeakingFrame",
    "BotStoppedSpeakingFrame",
    "CancelFrame",
    "DataFrame",
    "EagerEndOfTurnCancelFrame",
    "DEFAULT_EMPTY_USER_TURN_INTERRUPTED_PROMPT",
    "EndFrame",
    "ErrorCategory",
    "ErrorFrame",
    "Frame",
    "FrameDirection",
    "FrameProcessor",
    "FramePushed",
    "FunctionCallFromLLM",
    "FunctionCallParams",
    "FunctionCallResultProperties",
    "FunctionCallsStartedFrame",
    "FunctionSchema",
    "InputAudioRawFrame",
    "InputDTMFFrame",
    "InterruptionFrame",
    "KeypadEntry",
    "LLMContext",
    "LLMContextFrame",
    "LLMContextMessage",
    "LLMContextAggregatorPair",
    "LLMAssistantPushAggregationFrame",
    "LLMFullResponseEndFrame",
    "LLMFullResponseStartFrame",
    "LLMMessagesAppendFrame",
    "LLMService",
    "LLMSettings",
    "LLMTextFrame",
    "LLMUpdateSettingsFrame",
    "LLMUserAggregatorParams",
    "LocalSmartTurnAnalyzerV3",
    "OutputAudioRawFrame",
    "Pipeline",
    "PipelineParams",
    "PipelineWorker",
    "STTService",
    "ServiceSwitcher",
    "ServiceSwitcherStrategyFailover",
    "SileroOnnxModel",
    "SileroVADAnalyzer",
    "StartFrame",
    "SystemFrame",
    "TTSAudioRawFrame",
    "TTSService",
    "TTSSpeakFrame",
    "TTSStartedFrame",
    "TTSStoppedFrame",
    "TTSTextFrame",
    "TextPartForConcatenation",
    "ToolsSchema",
    "TranscriptionFrame",
    "TranscriptionUserTurnStartStrategy",
    "TransportParams",
    "TurnAnalyzerUserTurnStopStrategy",
    "UserStartedSpeakingFrame",
    "UserStoppedSpeakingFrame",
    "UserTurnStoppedMessage",
    "UserTurnSpeculation",
    "UserTurnStrategies",
    "VADAnalyzer",
    "VADParams",
    "VADState",
    "VADUserStartedSpeakingFrame",
    "VADUserStoppedSpeakingFrame",
    "VADUserTurnStartStrategy",
    "WorkerRunner",
    "concatenate_aggregated_text",
    "connection_limits",
    "create_file_resampler",
    "create_stream_resampler",
    "obj_id",
    "pcm_to_ulaw",
    "ulaw_to_pcm",
]
