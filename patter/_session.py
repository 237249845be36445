"""One phone call: its processor chain, history, callbacks and REST actions.

The session runs the call once its media stream has started; what the call is, and what
Twilio reported about it, comes from its ``CallEntry`` (``patter._calls``). Whatever
fails, ``run()`` hands ``on_call_end`` to the entry, which delivers it exactly once.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from patter._agent import Agent
from patter._call_state import NEXT_PHASES, CallInfo, CallOptions, CallPhase
from patter._callbacks import CallbackQueue, Callbacks
from patter._events import Event, History
from patter._log import call_sid_var, get_logger, mask_number
from patter._pipecat import (
    EndFrame,
    FrameProcessor,
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
from patter._pipeline import CallPipeline
from patter._prewarm import CallKit, build_kit
from patter._tool_calls import tool_handler, tool_schema
from patter._turns import TurnRecorder
from patter._twiml import transfer_twiml
from patter._vendors import VendorKeys, choices, is_factory
from patter.audio import PHONE_RATE_HZ
from patter.errors import TwilioError
from patter.processors._caller_audio_end import end_caller_audio, only_followed_by
from patter.processors.barge_in import BargeInGuard
from patter.processors.call_control import CallControl
from patter.processors.caller_mute import CallerInputMute
from patter.processors.checkpoint import PlayoutCheckpointFrame, PlayoutCheckpointProbe
from patter.processors.disclosure import AIDisclosure
from patter.processors.dtmf import DtmfInjector
from patter.processors.response_guard import RecoveryLines, ResponseGuard
from patter.transports.media_stream import MediaStreamSocket
from patter.transports.twilio_rest import TwilioRest
from patter.transports.twilio_transport import TwilioMediaTransport

if TYPE_CHECKING:
    from patter._calls import CallEntry

logger = get_logger(__name__)

END_GRACE_S = 5.0


class CallSession:
    """Runs one call's pipeline over an accepted Media Stream until the call ends."""

    def __init__(
        self,
        *,
        entry: CallEntry,
        keys: VendorKeys,
        socket: MediaStreamSocket,
        rest: TwilioRest,
        disclosure_audio: bytes,
        recovery_lines: RecoveryLines | None = None,
    ) -> None:
        agent, callbacks = entry.agent, entry.callbacks
        self._entry = entry
        self.info: CallInfo = entry.info
        self.agent: Agent = agent
        self.history = History()
        self._keys = keys
        self._socket = socket
        self._rest = rest
        self._callbacks: Callbacks = callbacks
        self._options: CallOptions = entry.options
        self._started_at = time.monotonic()
        self.ended_by: str | None = None
        self.transfer_to: str | None = None
        self._phase = (
            CallPhase.CONNECTING_HELD if self._options.hold_until_answered
            else CallPhase.CONNECTING
        )
        self._first_message = self.agent.first_message
        self._released = asyncio.Event()  # the disclosure waits for it
        self._chain_running = asyncio.Event()  # say() waits for it
        if self._phase is CallPhase.CONNECTING:
            self._released.set()
        self.disclosure = AIDisclosure(disclosure_audio, start=self._released, direct_mode=True)
        self.caller_input = CallerInputMute()
        self.barge_in: BargeInGuard | None = None
        self._finish_after: list[asyncio.Future[Any]] = []
        self.control = CallControl(
            allowlist=agent.transfer_allowlist,
            on_transfer=self._transfer,
            on_end_call=self._agent_hang_up,
        )
        self.context = LLMContext(
            messages=[{"role": "assistant", "content": agent.disclosure}],
            tools=ToolsSchema(
                standard_tools=[tool_schema(t) for t in agent.tools] + CallControl.schemas()
            ),
        )
        self._deliveries = CallbackQueue()
        self.turns = TurnRecorder(
            context=self.context,
            history=self.history,
            speaking=lambda: self.transport.speech.speaking,
            callbacks=callbacks,
            deliveries=self._deliveries,
            event=self._event,
            queue=self.queue,
            ending=lambda: self.ending,
        )
        self.transport = TwilioMediaTransport(
            socket,
            on_stream_end=self._on_stream_end,
            on_interrupted=self.turns.on_interrupted,
        )
        self._worker: PipelineWorker | None = None
        # Cancels a chain that has not ended END_GRACE_S after the stream did; dropped once
        # the call ends, or it would keep this session alive that long.
        self._stuck_watch: asyncio.TimerHandle | None = None
        self._start_frames: list[Any] = []
        self._user_context: FrameProcessor | None = None  # set with the chain
        self._quiet_tail: list[FrameProcessor] | None = None  # stages known to ignore caller audio
        self._output_tail: list[FrameProcessor] = []  # Patter's stages after the output
        self.guard: ResponseGuard | None = None  # without lines to say, no vendor failure is
        if recovery_lines is not None:           # answered (a bare test server)
            self.guard = ResponseGuard(
                recovery_lines,
                response_deadline_s=agent.recovery.deadlines.response_s,
                max_failed_turns=agent.recovery.max_failed_turns,
                on_said=self.turns.on_agent_line,
                on_give_up=self._give_up,
            )

    # ----- building -------------------------------------------------------------------

    def build_pipeline(self, kit: CallKit | None = None) -> CallPipeline:
        """The default chain of processors for this call (see ``patter._pipeline``).

        ``kit`` is a set of services prepared ahead (``patter._prewarm``); without one,
        they are built now.
        """
        if kit is None or kit.agent is not self.agent:
            kit = build_kit(self.agent, self._keys)
        stt, tts, llm = kit.stt, kit.tts, kit.llm
        self._start_frames = kit.start_frames
        for service in kit.llms:  # each vendor of a fallback list gets the tools
            self.control.register(service)
            for tool in self.agent.tools:
                service.register_function(tool.name, tool_handler(tool))
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
        # Patter's own pass-through stages run in Pipecat's direct mode: in the task of the
        # stage before them, without a queue and a task switch for every 20 ms of audio.
        self.barge_in = BargeInGuard(self.transport.speech, min_speech_s=self.agent.min_barge_in_s,
                                     vad=kit.vad, enable_direct_mode=True)
        pipeline = CallPipeline(
            [
                ("transport_in", self.transport.input()),
                ("barge_in", self.barge_in),
                ("disclosure_gate", self.disclosure.gate()),
                ("dtmf", DtmfInjector(on_digit=self.turns.on_digit, enable_direct_mode=True)),
                ("stt", stt),
                ("user_context", user),
                ("llm", llm),
                ("tts", tts),
                ("disclosure_player", self.disclosure.player()),
                ("transport_out", self.transport.output()),
                ("checkpoints", PlayoutCheckpointProbe(enable_direct_mode=True)),
                ("assistant_context", assistant),
            ]
        )
        if self._options.hold_until_answered:
            pipeline.insert_after("disclosure_gate", "caller_mute", self.caller_input)
        if self.guard is not None:
            pipeline.insert_after("transport_in", "response_watch", self.guard.watch())
            pipeline.insert_after("tts", "response_voice", self.guard.voice())
        self._user_context = user
        if not any(map(is_factory, choices(self.agent.llm) + choices(self.agent.tts))):
            # Patter's own stages, LLM and TTS never read caller audio (a user's LLM might:
            # speech to speech). Taken once every stage of Patter's own is in place.
            self._quiet_tail = pipeline.processors()[pipeline.names.index("user_context") + 1:]
        # The playout checkpoints and the assistant aggregator do not use the agent's audio.
        self._output_tail = pipeline.processors()[pipeline.names.index("transport_out") + 1:]
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
            processors = end_caller_audio(pipeline.processors(), after=self._user_context,
                                          quiet_tail=self._quiet_tail)
            output = self.transport.output()
            output.forward_audio = not only_followed_by(processors, output, self._output_tail)
            self._worker = PipelineWorker(
                Pipeline(processors),
                params=PipelineParams(
                    audio_in_sample_rate=PHONE_RATE_HZ, audio_out_sample_rate=PHONE_RATE_HZ
                ),
                cancel_on_idle_timeout=False,
                enable_rtvi=False,
                # No observers: Patter reads turns from the aggregators' events, and each
                # observer would get every frame pushed anywhere in the chain (a queue and
                # a task hop per push).
                enable_turn_tracking=False,
                idle_timeout_secs=None,
            )
            if self._start_frames:
                await self.queue(*self._start_frames)
            # The chain runs: a held call waits for its verdict, any other goes live.
            if self._phase is CallPhase.CONNECTING_HELD:
                self._enter(CallPhase.HELD_FOR_AMD)
            live = self._phase is CallPhase.CONNECTING and self._enter(CallPhase.LIVE)
            self._deliveries.post(self._callbacks.on_call_start, self._event())
            if live:
                await self._greet()
            if self._options.max_duration_s:
                timer = asyncio.create_task(self._limit_duration(self._options.max_duration_s))
            runner = WorkerRunner(handle_sigint=False)
            await runner.add_workers(self._worker)
            await runner.run()
        except asyncio.CancelledError:
            self._end_as("shutdown")
            raise
        except Exception:
            logger.exception("call failed")
            self._end_as("error")
        finally:
            if timer is not None:
                timer.cancel()
            if self._stuck_watch is not None:
                self._stuck_watch.cancel()
            await self._socket.close()
            await self._finish()

    async def stop_listening(self) -> None:
        """Ignore the far end for good (a machine answered): drop its audio before STT and
        never let it pause or interrupt the agent (the voicemail plays whole)."""
        self.caller_input.mute()
        if self.barge_in is not None:
            await self.barge_in.disable()

    @property
    def phase(self) -> CallPhase:
        """Where the call stands."""
        return self._phase

    @property
    def ending(self) -> bool:
        """Whether the call is ending or over (no turn is answered any more)."""
        return self._phase in (CallPhase.TRANSFERRING, CallPhase.ENDING, CallPhase.ENDED)

    async def answered(self, *, speak_first_message: bool = True) -> None:
        """Release agent output held while an answering-machine check was pending."""
        if self._phase not in (CallPhase.CONNECTING_HELD, CallPhase.HELD_FOR_AMD):
            return
        if not speak_first_message:
            self._first_message = ""
        if self._enter(CallPhase.CONNECTING):
            return  # the chain is not running yet: run() goes live
        self._enter(CallPhase.LIVE)
        await self._greet()

    async def say(self, text: str) -> bool:
        """Speak ``text`` and wait until it has been heard; False if the stream ended first.

        Waits for the pipeline to start if it has not yet (e.g. a voicemail decided
        before the stream connected).
        """
        await self._chain_running.wait()
        checkpoint = PlayoutCheckpointFrame(label="say")
        await self.queue(TTSSpeakFrame(text), checkpoint)
        await checkpoint.reached.wait()
        return not self.transport.speech.stream_closed

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
        self._end_as(ended_by)
        try:
            await self._rest.hang_up(self.info.call_sid)
        except Exception:
            logger.exception("hang-up through the REST API failed; closing the stream")
            await self._socket.close()

    # ----- phase ------------------------------------------------------------------------

    def _enter(self, phase: CallPhase) -> bool:
        """Move to ``phase`` if the current phase allows it; True if it moved.

        The one place the phase changes: the chain running releases ``say()``, going
        live releases the disclosure and notes it in the history (once: LIVE is entered
        once).
        """
        if phase not in NEXT_PHASES[self._phase]:
            return False
        first_time_live = phase is CallPhase.LIVE and self._phase is not CallPhase.TRANSFERRING
        self._phase = phase
        if phase in (CallPhase.HELD_FOR_AMD, CallPhase.LIVE):
            self._chain_running.set()
        if phase in (CallPhase.CONNECTING, CallPhase.LIVE):
            self._released.set()
        if first_time_live:
            self.history.add("assistant", self.agent.disclosure)
        return True

    def _end_as(self, ended_by: str) -> None:
        """The call is ending; the first reason given is the one ``on_call_end`` reports."""
        self.ended_by = self.ended_by or ended_by
        self._enter(CallPhase.ENDING)

    async def _greet(self) -> None:
        """Just gone live: report the disclosure, queue the first message."""
        disclosure = self._event(text=self.agent.disclosure, role="assistant")
        self._deliveries.post(self._callbacks.on_message, disclosure)
        if self._first_message:
            await self.queue(TTSSpeakFrame(self._first_message))

    # ----- events from the chain ------------------------------------------------------

    async def _on_stream_end(self, reason: str) -> None:
        self._end_as({"stop": "caller", "error": "error"}.get(reason, "disconnect"))
        logger.info("media stream ended", extra={"reason": reason, "ended_by": self.ended_by})
        if self._worker is None:
            return
        await self._worker.queue_frame(EndFrame())
        self._stuck_watch = asyncio.get_running_loop().call_later(
            END_GRACE_S, self._cancel_if_stuck)

    def _cancel_if_stuck(self) -> None:
        if self._worker is not None and not self._worker.has_finished():
            asyncio.ensure_future(self._worker.cancel(reason="call ended"))

    # ----- actions ----------------------------------------------------------------------

    async def _transfer(self, number: str, reason: str) -> None:
        if not self._enter(CallPhase.TRANSFERRING):
            logger.info("transfer skipped: the call is not live",
                        extra={"phase": self._phase.value})
            return
        self.ended_by, self.transfer_to = "transfer", number
        twiml = transfer_twiml(number, caller_id=self._options.caller_id,
                               hold_music_url=self.agent.hold_music_url
                               or self._options.hold_music_url)
        logger.info("transfer", extra={"to": mask_number(number), "reason": reason[:200]})
        try:
            redirected = await self._rest.redirect(self.info.call_sid, twiml)
        except TwilioError:
            self.ended_by = self.transfer_to = None  # Twilio refused: the call goes on
            self._enter(CallPhase.LIVE)
            raise
        if not redirected:
            logger.info("transfer skipped: call already ended")

    async def _agent_hang_up(self) -> None:
        await self.hang_up("agent")

    async def _give_up(self) -> None:
        """Vendors failed turn after turn; the goodbye was heard: transfer to the agent's
        fallback number, or hang up."""
        number = self.agent.recovery.fallback_number
        if number is not None:
            try:
                await self._transfer(number, "vendors failed")
                return
            except TwilioError as exc:
                logger.warning("fallback transfer refused by twilio; hanging up",
                               extra={"status": exc.status, "code": exc.code})
        await self.hang_up("error")

    async def _limit_duration(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        logger.info("maximum call duration reached", extra={"seconds": seconds})
        await self.hang_up("max_duration")

    # ----- ending -------------------------------------------------------------------------

    async def _finish(self) -> None:
        if not self._enter(CallPhase.ENDED):
            return
        if self._finish_after:
            await asyncio.wait(self._finish_after, timeout=END_GRACE_S)
        history = self.history.snapshot()
        event = self._event(
            transcript=history,
            duration=round(time.monotonic() - self._started_at, 3),
            ended_by=self.ended_by or "caller",
            transfer_to=self.transfer_to,
            errors=self.guard.errors() if self.guard is not None else [],
            **self._entry.end_fields(),
        )
        logger.info("call ended", extra={"ended_by": event["ended_by"]})
        await self._deliveries.flush()
        await self._entry.end(event)

    def _event(self, **fields: Any) -> Event:
        return self._entry.event(self.history, **fields)
