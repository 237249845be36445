"""Ready-made per-call services, so a call's first audio never waits for model loads.

Building a call's services costs a few hundred ms of CPU (Silero VAD and the smart-turn
model are ONNX sessions, each vendor client sets up TLS). ``KitShelf`` keeps one kit built
ahead for the agent being served and builds the next one in a worker thread as soon as a
call takes it: off the path between Twilio's ``start`` and the first audio, and off the
event loop that paces the live calls' audio.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field

from patter._agent import Agent
from patter._failover import with_fallbacks
from patter._log import get_logger
from patter._pipecat import (
    AsyncHTTPClient,
    Frame,
    FrameProcessor,
    LLMService,
    SileroVADAnalyzer,
    TranscriptionUserTurnStartStrategy,
    TurnAnalyzerUserTurnStopStrategy,
    UserTurnStrategies,
    VADUserTurnStartStrategy,
)
from patter._shared_models import (
    SharedSileroVADAnalyzer,
    SharedSmartTurnAnalyzer,
    load_shared_models,
)
from patter._speculation import SpeculativeTurnStopStrategy
from patter._vendors import (
    VendorKeys,
    choices,
    make_llm,
    make_stt,
    make_tts,
    openai_connection_pool,
    prompt_frames,
)
from patter.audio import PHONE_RATE_HZ
from patter.processors.barge_in import barge_in_vad_params

logger = get_logger(__name__)



@dataclass
class CallKit:
    """The stateful services one call needs; used by exactly one call.

    ``stt``, ``tts`` and ``llm`` are pipeline stages: a service, or a ``FailoverSwitcher``
    over the vendors of a fallback list; ``llms`` are the LLM services behind ``llm`` (each
    gets the call's tools). ``start_frames`` go into the call's pipeline first, before
    anything else is queued (the agent's prompt for an LLM the user's factory built).
    """

    agent: Agent
    stt: FrameProcessor
    tts: FrameProcessor
    llm: FrameProcessor
    llms: list[LLMService]
    vad: SileroVADAnalyzer
    turn_strategies: UserTurnStrategies
    start_frames: list[Frame] = field(default_factory=list)


def build_kit(
    agent: Agent, keys: VendorKeys, http_client: AsyncHTTPClient | None = None
) -> CallKit:
    """Build every per-call service for ``agent`` (CPU-bound; a few hundred ms). OpenAI
    services send their requests over ``http_client`` when given (else each opens its own);
    a user's factory is called once for each of its services. A fallback list gets one
    service per vendor."""
    deadlines = agent.recovery.deadlines
    llm_choices = choices(agent.llm)
    llms = [make_llm(choice, agent.model, agent.system_prompt, keys, http_client, deadlines)
            for choice in llm_choices]
    return CallKit(
        agent=agent,
        stt=with_fallbacks(
            [make_stt(c, keys, http_client, deadlines) for c in choices(agent.stt)], "stt"
        ),
        tts=with_fallbacks(
            [make_tts(c, agent.voice, keys, http_client, deadlines) for c in choices(agent.tts)],
            "tts",
        ),
        llm=with_fallbacks(llms, "llm"),
        llms=llms,
        start_frames=[frame for choice, llm in zip(llm_choices, llms, strict=True)
                      for frame in prompt_frames(choice, llm, agent.system_prompt)],
        vad=SharedSileroVADAnalyzer(
            sample_rate=PHONE_RATE_HZ, params=barge_in_vad_params(agent.min_barge_in_s)
        ),
        turn_strategies=UserTurnStrategies(
            start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
            stop=[turn_stop_strategy(agent)],
        ),
    )


def turn_stop_strategy(agent: Agent) -> TurnAnalyzerUserTurnStopStrategy:
    """Smart-turn decides when the caller's turn ends; with ``agent.speculative_replies``
    the LLM starts while it waits (``patter._speculation``)."""
    strategy = SpeculativeTurnStopStrategy if agent.speculative_replies \
        else TurnAnalyzerUserTurnStopStrategy
    return strategy(turn_analyzer=SharedSmartTurnAnalyzer())


class KitShelf:
    """Keeps one ``CallKit`` ready for the served agent; every kit's OpenAI services share
    one connection pool (``openai_connection_pool``), open until ``close()``."""

    def __init__(self, keys: VendorKeys) -> None:
        self._keys = keys
        self._ready: CallKit | None = None
        self._refill: asyncio.Task[None] | None = None
        self.http_client = openai_connection_pool()

    def stock(self, agent: Agent) -> None:
        """Build a kit for ``agent`` now (at ``serve()`` start)."""
        self._ready = self._build(agent)

    async def take(self, agent: Agent) -> CallKit:
        """A kit for ``agent``: the ready one, the one being built, or one built now."""
        if self._ready is None and self._refill is not None and not self._refill.done():
            await asyncio.shield(self._refill)
        kit, self._ready = self._ready, None
        if kit is None or kit.agent is not agent:
            kit = await asyncio.to_thread(self._build_loaded, agent)
        self._schedule_refill(agent)
        return kit

    def stop_refilling(self) -> None:
        """Build no more kits (the server is stopping)."""
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None

    async def close(self) -> None:
        """Stop refilling and close the connection pool (once no call uses it)."""
        self.stop_refilling()
        await self.http_client.aclose()

    def _build(self, agent: Agent) -> CallKit:
        return build_kit(agent, self._keys, self.http_client)

    def _build_loaded(self, agent: Agent) -> CallKit:
        """A kit, with the shared ONNX sessions loaded: a call is on, its VAD needs them
        soon (not loaded before the first call, so an idle server holds less memory)."""
        load_shared_models()
        return self._build(agent)

    def _schedule_refill(self, agent: Agent) -> None:
        if self._refill is None or self._refill.done():
            # A fresh context: the build must not log under the SID of the call that took a kit.
            self._refill = asyncio.create_task(self._restock(agent), context=contextvars.Context())

    async def _restock(self, agent: Agent) -> None:
        try:
            kit = await asyncio.to_thread(self._build_loaded, agent)
        except Exception:
            logger.exception("could not prepare services for the next call")
            return
        if self._ready is None:
            self._ready = kit
