"""The baseline every benchmark compares against: a plain Pipecat Twilio bot.

It is what a Pipecat user writes from Pipecat's own Twilio example: FastAPIWebsocketTransport
with TwilioFrameSerializer (auto hang-up off, since the fake Twilio is not its REST host),
OpenAI STT/LLM/TTS, Silero VAD in the user aggregator, default turn strategies, and a
greeting spoken on connect. It runs against the same loopback fakes as Patter, so both
are measured in the same run on the same machine.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocket
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

MEDIA_PATH = "/ws"


def plain_pipecat_app(*, openai_base_url: str, openai_key: str, greeting: str) -> FastAPI:
    """A FastAPI app serving one plain Pipecat bot per Media Streams WebSocket on ``/ws``."""
    app = FastAPI()

    @app.websocket(MEDIA_PATH)
    async def media(websocket: WebSocket) -> None:
        await websocket.accept()
        _, call_data = await parse_telephony_websocket(websocket)
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True, audio_out_enabled=True, serializer=serializer
            ),
        )
        keys: dict[str, Any] = {"api_key": openai_key, "base_url": openai_base_url}
        context = LLMContext()
        pair = LLMContextAggregatorPair(
            context, user_params=LLMUserAggregatorParams(vad_analyzer=SileroVADAnalyzer())
        )
        worker = PipelineWorker(
            Pipeline([
                transport.input(),
                OpenAISTTService(**keys),
                pair.user(),
                OpenAILLMService(
                    **keys,
                    settings=OpenAILLMService.Settings(
                        model="gpt-4o-mini", system_instruction="You are a test bot."
                    ),
                ),
                OpenAITTSService(**keys, sample_rate=24000),
                transport.output(),
                pair.assistant(),
            ]),
            params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
            cancel_on_idle_timeout=False,
        )

        @transport.event_handler("on_client_connected")
        async def on_connected(_transport: Any, _ws: Any) -> None:
            await worker.queue_frames([TTSSpeakFrame(greeting)])

        @transport.event_handler("on_client_disconnected")
        async def on_disconnected(_transport: Any, _ws: Any) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app
