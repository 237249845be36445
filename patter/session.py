"""One phone call: its processor chain, history, callbacks and REST actions.

The session is the only place that knows the whole call. Whatever fails, ``run()``
delivers ``on_call_end`` exactly once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from patter._callbacks import CallbackQueue, Callbacks, fire
from patter._log import call_sid_var, get_logger, mask_number
from patter._pipecat import (
    EndFrame,
    FunctionCallParams,
    FunctionSchema,
    LLMContext,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
    Pipeline,
    PipelineParams,
    PipelineWorker,
    ToolsSchema,
    TTSSpeakFrame,
    WorkerRunner,
)
from patter._prewarm import CallKit, build_kit
from patter._turns import TurnRecorder
from patter._twiml import transfer_twiml
from patter.agent import Agent, Tool
from patter.errors import TwilioError
from patter.events import Event, History
from patter.pipeline import CallPipeline
from patter.processors.barge_in import BargeInGuard
from patter.processors.call_control import CallControl
from patter.processors.caller_mute import CallerInputMute
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.processors.dtmf import DtmfInjector
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_rest import TwilioRest
from patter.transports.twilio_transport import TwilioMediaTransport
from patter.vendors import VendorKeys

logger = get_logger(__name__)

PHONE_RATE_HZ = 8000
END_GRACE_S = 5.0


@dataclass
class CallInfo:
    """Who is on the call and how it was placed."""

    call_sid: str
    caller: str
    callee: str
    direction: str  # "inbound" | "outbound"
    stream_sid: str = ""


@dataclass
class CallOptions:
    """Per-call behaviour chosen by ``serve()`` / ``call()``."""

    hold_music_url: str
    caller_id: str
    max_duration_s: float | None = None
    hold_until_answered: bool = False
    record: bool = False
    extra_end_fields: dict[str, Any] = field(default_factory=dict)


class CallSession:
    """Runs one call's pipeline over an accepted Media Stream until the call ends."""

    def __init__(
        self,
        *,
        info: CallInfo,
        agent: Agent,
        keys: VendorKeys,
        socket: MediaStreamSocket,
        rest: TwilioRest,
        callbacks: Callbacks,
        disclosure_audio: bytes,
        options: CallOptions,
    ) -> None:
        self.info = info
        self.agent = agent
        self.history = History()
        self._keys = keys
        self._socket = socket
        self._rest = rest
        self._callbacks = callbacks
        self._options = options
        self._started_at = time.monotonic()
        self._ended = False
        self.ended_by: str | None = None
        self.transfer_to: str | None = None
        self.end_fields: dict[str, Any] = dict(options.extra_end_fields)
        self._answered = asyncio.Event()
        if not options.hold_until_answered:
            self._answered.set()
        self.disclosure = AIDisclosure(disclosure_audio, start=self._answered)
        self.caller_input = CallerInputMute()
        self.barge_in: BargeInGuard | None = None
        self._running = asyncio.Event()
        self._first_message_due = True
        self._disclosure_noted = False
        self._finish_after: list[asyncio.Future[Any]] = []
        self.control = CallControl(
            allowlist=agent.transfer_allowlist,
            on_transfer=self._transfer,
            on_end_call=self._agent_hang_up,
        )
        self.context = LLMContext(
            messages=[{"role": "assistant", "content": agent.disclosure}],
            tools=ToolsSchema(
                standard_tools=[_schema(t) for t in agent.tools] + CallControl.schemas()
            ),
        )
        ledger = PlayoutLedger()
        self._deliveries = CallbackQueue()
        self.turns = TurnRecorder(
            context=self.context,
            history=self.history,
            ledger=ledger,
            callbacks=callbacks,
            deliveries=self._deliveries,
            event=self._event,
            queue=self.queue,
            ending=lambda: self.ended_by is not None,
        )
        self.transport = TwilioMediaTransport(
            socket,
            on_stream_end=self._on_stream_end,
            on_interrupted=self.turns.on_interrupted,
            ledger=ledger,
        )
        self._worker: PipelineWorker | None = None

    # ----- building -------------------------------------------------------------------

    def build_pipeline(self, kit: CallKit | None = None) -> CallPipeline:
        """The default chain of processors for this call (see ``patter.pipeline``).

        ``kit`` is a set of services prepared ahead (``patter._prewarm``); without one,
        they are built now.
        """
        if kit is None or kit.agent is not self.agent:
            kit = build_kit(self.agent, self._keys)
        stt, tts, llm = kit.stt, kit.tts, kit.llm
        self.control.register(llm)
        for tool in self.agent.tools:
            llm.register_function(tool.name, _tool_handler(tool))
        aggregators = LLMContextAggregatorPair(
            self.context,
            user_params=LLMUserAggregatorParams(
                vad_analyzer=kit.vad,
                user_turn_strategies=kit.turn_strategies,
                empty_user_turn=None,  # answered by self.turns, which knows what was heard
            ),
        )
        user, assistant = aggregators.user(), aggregators.assistant()
        user.add_event_handler("on_user_turn_stopped", self.turns.on_user_turn_stopped)
        assistant.add_event_handler("on_assistant_turn_started",
                                    self.turns.on_assistant_turn_started)
        assistant.add_event_handler("on_assistant_turn_stopped",
                                    self.turns.on_assistant_turn_stopped)
        self.barge_in = BargeInGuard(self.transport.ledger, min_speech_s=self.agent.min_barge_in_s)
        pipeline = CallPipeline(
            [
                ("transport_in", self.transport.input()),
                ("barge_in", self.barge_in),
                ("disclosure_gate", self.disclosure.gate()),
                ("dtmf", DtmfInjector(on_digit=self.turns.on_digit)),
                ("stt", stt),
                ("user_context", user),
                ("llm", llm),
                ("tts", tts),
                ("disclosure_player", self.disclosure.player()),
                ("transport_out", self.transport.output()),
                ("checkpoints", PlayoutCheckpointProbe()),
                ("assistant_context", assistant),
            ]
        )
        if self._options.hold_until_answered:
            pipeline.insert_after("disclosure_gate", "caller_mute", self.caller_input)
        return pipeline

    # ----- running --------------------------------------------------------------------

    async def run(self, kit: CallKit | None = None) -> None:
        """Run the call to its end; ``on_call_end`` fires exactly once, whatever happened."""
        call_sid_var.set(self.info.call_sid)
        timer: asyncio.Task[None] | None = None
        try:
            pipeline = self.build_pipeline(kit)
            if self.agent.customize_pipeline is not None:
                self.agent.customize_pipeline(pipeline)
                self.disclosure.require_in(pipeline.processors())
            self._worker = PipelineWorker(
                Pipeline(pipeline.processors()),
                params=PipelineParams(
                    audio_in_sample_rate=PHONE_RATE_HZ, audio_out_sample_rate=PHONE_RATE_HZ
                ),
                cancel_on_idle_timeout=False,
                enable_rtvi=False,
            )
            self._running.set()
            # A call held for an answering machine verdict notes the disclosure once released.
            noted = self._answered.is_set() and self._note_disclosure()
            self._deliveries.post(self._callbacks.on_call_start, self._event())
            if noted:
                await self._announce_disclosure()
            if self._answered.is_set():
                await self._queue_first_message()
            if self._options.max_duration_s:
                timer = asyncio.create_task(self._limit_duration(self._options.max_duration_s))
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self._worker)
            await runner.run()
        except asyncio.CancelledError:
            self.ended_by = self.ended_by or "shutdown"
            raise
        except Exception:
            logger.exception("call failed")
            self.ended_by = self.ended_by or "error"
        finally:
            if timer is not None:
                timer.cancel()
            await self._socket.close()
            await self._finish()

    async def stop_listening(self) -> None:
        """Ignore the far end for good (a machine answered): drop its audio before STT and
        never let it pause or interrupt the agent (the voicemail plays whole)."""
        self.caller_input.mute()
        if self.barge_in is not None:
            await self.barge_in.disable()

    async def answered(self, *, speak_first_message: bool = True) -> None:
        """Release agent output held while an answering-machine check was pending."""
        if self._answered.is_set():
            return
        self._answered.set()
        if self._running.is_set() and self._note_disclosure():
            await self._announce_disclosure()
        if speak_first_message:
            await self._queue_first_message()
        else:
            self._first_message_due = False

    async def say(self, text: str) -> bool:
        """Speak ``text`` and wait until it has been heard; False if the stream ended first.

        Waits for the pipeline to start if it has not yet (e.g. a voicemail decided
        before the stream connected).
        """
        await self._running.wait()
        checkpoint = PlayoutCheckpointFrame(label="say")
        await self.queue(TTSSpeakFrame(text), checkpoint)
        await checkpoint.reached.wait()
        return not self.transport.ledger.stream_closed

    def finish_after(self, task: asyncio.Future[Any]) -> None:
        """Make ``on_call_end`` wait (up to ``END_GRACE_S``) for ``task``, e.g. a REST request
        whose answer belongs in the end event."""
        self._finish_after.append(task)

    async def queue(self, *frames: Any) -> None:
        """Queue frames at the head of the running pipeline."""
        if self._worker is not None:
            await self._worker.queue_frames(list(frames))

    async def hang_up(self, ended_by: str) -> None:
        """End the call through Twilio (the stream then stops and the pipeline ends)."""
        self.ended_by = self.ended_by or ended_by
        try:
            await self._rest.hang_up(self.info.call_sid)
        except Exception:
            logger.exception("hang-up through the REST API failed; closing the stream")
            await self._socket.close()

    # ----- events from the chain ------------------------------------------------------

    def _note_disclosure(self) -> bool:
        """Add the disclosure to the history, once; True the first time."""
        if self._disclosure_noted:
            return False
        self._disclosure_noted = True
        self.history.add("assistant", self.agent.disclosure)
        return True

    async def _announce_disclosure(self) -> None:
        disclosure = self._event(text=self.agent.disclosure, role="assistant")
        self._deliveries.post(self._callbacks.on_message, disclosure)

    async def _queue_first_message(self) -> None:
        # Once, and only into a running pipeline: run() queues it if it was released earlier.
        if self.agent.first_message and self._first_message_due and self._worker is not None:
            self._first_message_due = False
            await self.queue(TTSSpeakFrame(self.agent.first_message))

    async def _on_stream_end(self, reason: str) -> None:
        self.ended_by = self.ended_by or ("caller" if reason == "stop" else "disconnect")
        logger.info("media stream ended", extra={"reason": reason, "ended_by": self.ended_by})
        if self._worker is None:
            return
        await self._worker.queue_frame(EndFrame())
        asyncio.get_running_loop().call_later(END_GRACE_S, self._cancel_if_stuck)

    def _cancel_if_stuck(self) -> None:
        if self._worker is not None and not self._worker.has_finished():
            asyncio.ensure_future(self._worker.cancel(reason="call ended"))

    # ----- actions ----------------------------------------------------------------------

    async def _transfer(self, number: str, reason: str) -> None:
        if self.ended_by is not None:
            logger.info("transfer skipped: the call is already ending",
                        extra={"ended_by": self.ended_by})
            return
        self.ended_by = "transfer"
        self.transfer_to = number
        twiml = transfer_twiml(number, caller_id=self._options.caller_id,
                               hold_music_url=self.agent.hold_music_url
                               or self._options.hold_music_url)
        logger.info("transfer", extra={"to": mask_number(number), "reason": reason[:200]})
        try:
            redirected = await self._rest.redirect(self.info.call_sid, twiml)
        except TwilioError:
            self.ended_by = self.transfer_to = None  # Twilio refused: the call goes on
            raise
        if not redirected:
            logger.info("transfer skipped: call already ended")

    async def _agent_hang_up(self) -> None:
        await self.hang_up("agent")

    async def _limit_duration(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        logger.info("maximum call duration reached", extra={"seconds": seconds})
        await self.hang_up("max_duration")

    # ----- ending -------------------------------------------------------------------------

    async def _finish(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._finish_after:
            await asyncio.wait(self._finish_after, timeout=END_GRACE_S)
        history = self.history.snapshot()
        event = self._event(
            transcript=history,
            duration=round(time.monotonic() - self._started_at, 3),
            ended_by=self.ended_by or "caller",
            transfer_to=self.transfer_to,
            **self.end_fields,
        )
        logger.info("call ended", extra={"ended_by": event["ended_by"]})
        await self._deliveries.flush()
        await fire(self._callbacks.on_call_end, event)

    def _event(self, **fields: Any) -> Event:
        base = {
            "call_sid": self.info.call_sid,
            "caller": self.info.caller,
            "callee": self.info.callee,
            "direction": self.info.direction,
            "history": self.history.snapshot(),
        }
        base.update(fields)
        return Event(**base)


def _schema(tool: Tool) -> FunctionSchema:
    parameters = dict(tool.parameters)
    return FunctionSchema(
        name=tool.name,
        description=tool.description,
        properties=dict(parameters.get("properties", {})),
        required=list(parameters.get("required", [])),
    )


def _tool_handler(tool: Tool) -> Any:
    async def handler(params: FunctionCallParams) -> None:
        try:
            result = tool.handler(**dict(params.arguments))
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:
            logger.exception("tool raised", extra={"tool": tool.name})
            result = {"error": f"{type(exc).__name__}: {exc}"}
        await params.result_callback(result)

    return handler
