"""Pipecat's real OpenAI services against FakeOpenAI on the loopback interface."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from pipecat.frames.frames import (
    ErrorFrame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMRunFrame,
    LLMTextFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSSpeakFrame,
    TTSStoppedFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.services.llm_service import FunctionCallParams
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.openai.stt import OpenAISTTService
from pipecat.services.openai.tts import OpenAITTSService

from patter.testing import FakeOpenAI, Fault
from patter.testing.audio import best_match, silence, synthesize_speech

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]},
    },
}


def make_llm(fake: FakeOpenAI, api_key: str = "sk-test") -> OpenAILLMService:
    return OpenAILLMService(api_key=api_key, base_url=fake.base_url,
                            settings=OpenAILLMService.Settings(model="gpt-4.1-mini"))


async def test_llm_service_streams_the_scripted_reply_text(pipeline: Any) -> None:
    async with FakeOpenAI() as fake:
        fake.reply_with("Hello there, nice to hear from you.")
        context = LLMContext(messages=[{"role": "user", "content": "Hi!"}])
        llm = make_llm(fake)
        async with pipeline([llm]) as p:
            await p.send(LLMContextFrame(context))
            await p.wait_for(lambda: bool(p.down(LLMFullResponseEndFrame)))
        pieces = [f.text for f in p.down(LLMTextFrame)]
    assert "".join(pieces) == "Hello there, nice to hear from you."
    assert len(pieces) > 3, "the reply should arrive in several small chunks"
    assert fake.chat_requests[0]["messages"] == [{"role": "user", "content": "Hi!"}]
    assert fake.chat_requests[0]["stream"] is True
    assert "authorization" not in fake.requests[0].headers


async def test_a_scripted_tool_call_reaches_the_registered_function_handler(
        pipeline: Any) -> None:
    calls: list[dict[str, Any]] = []

    async def get_weather(params: FunctionCallParams) -> None:
        calls.append(dict(params.arguments))
        await params.result_callback({"forecast": "sunny"})

    async with FakeOpenAI() as fake:
        fake.call_tool("get_weather", {"city": "Paris"}, call_id="call_weather_1")
        fake.reply_with("It is sunny in Paris.")
        llm = make_llm(fake)
        llm.register_function("get_weather", get_weather)
        context = LLMContext(messages=[{"role": "user", "content": "Weather in Paris?"}],
                             tools=[_function_schema()])
        aggregators = LLMContextAggregatorPair(context)
        async with pipeline([aggregators.user(), llm, aggregators.assistant()]) as p:
            await p.send(LLMRunFrame())
            await p.wait_for(lambda: "".join(f.text for f in p.pushed_by(llm, LLMTextFrame))
                             == "It is sunny in Paris.")
    assert calls == [{"city": "Paris"}]
    assert fake.chat_requests[0]["tools"] == [WEATHER_TOOL]
    follow_up = fake.chat_requests[1]["messages"]
    tool_message = next(m for m in follow_up if m["role"] == "tool")
    assert tool_message["tool_call_id"] == "call_weather_1"
    assert "sunny" in tool_message["content"]


def _function_schema() -> Any:
    from pipecat.adapters.llm.schemas.function_schema import FunctionSchema

    return FunctionSchema(name="get_weather", description="Weather in a city",
                          properties={"city": {"type": "string"}}, required=["city"])


async def test_the_default_responder_echoes_the_last_user_message_without_streaming() -> None:
    async with FakeOpenAI() as fake:
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
        reply = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "system", "content": "Be brief."},
                                       {"role": "user", "content": "book a table"}])
        await client.close()
    assert reply.choices[0].message.content == "You said: book a table"
    assert reply.choices[0].finish_reason == "stop"


async def test_a_wrong_api_key_is_rejected_with_openais_401_error() -> None:
    async with FakeOpenAI(api_key="sk-right") as fake:
        client = openai.AsyncOpenAI(api_key="sk-wrong-key", base_url=fake.base_url,
                                    max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
        await client.close()
    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "invalid_api_key"


async def test_the_llm_service_reports_an_error_frame_for_a_wrong_api_key(pipeline: Any) -> None:
    async with FakeOpenAI(api_key="sk-right") as fake:
        context = LLMContext(messages=[{"role": "user", "content": "Hi!"}])
        async with pipeline([make_llm(fake, api_key="sk-wrong")]) as p:
            await p.send(LLMContextFrame(context))
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert "401" in p.up(ErrorFrame)[0].error
    assert not p.down(LLMTextFrame)


async def test_openai_tts_service_streams_espeak_speech_for_the_text(pipeline: Any) -> None:
    text = "Thanks for calling, how can I help?"
    async with FakeOpenAI() as fake:
        tts = OpenAITTSService(api_key="sk-test", base_url=fake.base_url, sample_rate=24000,
                               settings=OpenAITTSService.Settings(voice="nova"))
        async with pipeline([tts], audio_out_rate=24000) as p:
            await p.send(TTSSpeakFrame(text))
            await p.wait_for(lambda: bool(p.down(TTSStoppedFrame)))
        frames = p.down(TTSAudioRawFrame)
    audio = b"".join(f.audio for f in frames)
    expected = synthesize_speech(text, sample_rate_hz=24000)
    assert {f.sample_rate for f in frames} == {24000}
    assert len(audio) == len(expected)
    assert best_match(audio, expected[24000:48000]) > 0.8  # 0.5 s from the middle
    assert fake.spoken == [text]
    assert fake.requests[0].json["voice"] == "nova"
    assert fake.requests[0].json["response_format"] == "pcm"


async def test_openai_stt_service_transcribes_a_vad_segment_as_the_queued_text(
        pipeline: Any) -> None:
    speech = synthesize_speech("I would like to book a table", sample_rate_hz=16000)
    audio = silence(0.2, sample_rate_hz=16000) + speech
    chunk = 16000 * 2 // 50  # 20 ms
    async with FakeOpenAI() as fake:
        fake.transcripts.append("I would like to book a table.")
        stt = OpenAISTTService(api_key="sk-test", base_url=fake.base_url,
                               settings=OpenAISTTService.Settings(model="gpt-4o-transcribe"))
        async with pipeline([stt], audio_in_rate=16000) as p:
            await p.send(VADUserStartedSpeakingFrame())
            await p.send(*[InputAudioRawFrame(audio[i:i + chunk], 16000, 1)
                           for i in range(0, len(audio), chunk)])
            await p.send(VADUserStoppedSpeakingFrame())
            await p.wait_for(lambda: bool(p.down(TranscriptionFrame)))
    assert [f.text for f in p.down(TranscriptionFrame)] == ["I would like to book a table."]
    upload = fake.transcribed_audio[0]
    assert upload.sample_rate_hz == 16000
    assert best_match(upload.pcm, speech[:32000]) > 0.8  # its first second
    assert fake.requests[0].form["model"] == "gpt-4o-transcribe"
    assert fake.transcripts == []


async def test_a_custom_responder_sees_the_messages_and_tools_of_each_request() -> None:
    seen: list[tuple[str, int]] = []

    def responder(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        seen.append((messages[-1]["content"], len(tools)))
        return f"{len(tools)} tools available"

    async with FakeOpenAI() as fake:
        fake.responder = responder
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url)
        stream = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "what can you do?"}],
            tools=[WEATHER_TOOL], stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
    assert text == "1 tools available"
    assert seen == [("what can you do?", 1)]
    assert fake.chat_requests[0]["tools"] == [WEATHER_TOOL]


# ----- injected faults ------------------------------------------------------------------


async def test_chat_500s_are_retried_by_the_openai_sdk_and_the_reply_still_arrives() -> None:
    async with FakeOpenAI() as fake:
        fake.reply_with("Back on track.")
        fake.faults.add("chat", Fault.http(500), times=2)
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=2)
        reply = await client.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
        await client.close()
    assert reply.choices[0].message.content == "Back on track."
    assert [(f.request, f.fault.status) for f in fake.faults.fired] == [("chat", 500)] * 2
    assert len(fake.chat_requests) == 3


async def test_a_chat_429_carries_openais_rate_limit_error_and_retry_after() -> None:
    async with FakeOpenAI() as fake:
        fake.faults.add("chat", Fault.http(429, retry_after_s=2))
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
        await client.close()
    assert caught.value.response.headers["retry-after"] == "2"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "rate_limit_exceeded"


async def test_a_hanging_chat_request_times_out_in_the_client() -> None:
    async with FakeOpenAI() as fake:
        fake.faults.add("chat", Fault.hang())
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url,
                                    max_retries=0, timeout=0.3)
        with pytest.raises(openai.APITimeoutError):
            await client.chat.completions.create(
                model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
        await client.close()
    assert [f.fault.kind for f in fake.faults.fired] == ["hang"]


async def test_a_cut_chat_stream_breaks_off_after_its_first_chunk(pipeline: Any) -> None:
    async with FakeOpenAI() as fake:
        fake.reply_with("This answer never arrives in full.")
        fake.faults.add("chat", Fault.cut())
        context = LLMContext(messages=[{"role": "user", "content": "Hi!"}])
        async with pipeline([make_llm(fake)]) as p:
            await p.send(LLMContextFrame(context))
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert not p.down(LLMTextFrame)
    assert fake.replies == []  # the cut answer was used up


async def test_a_cut_speech_stream_gives_only_its_first_chunk() -> None:
    async with FakeOpenAI() as fake:
        fake.faults.add("speech", Fault.cut())
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        received = bytearray()
        with pytest.raises(Exception, match="incomplete chunked read"):
            async with client.audio.speech.with_streaming_response.create(
                    model="gpt-4o-mini-tts", voice="nova", input="Hello there, how are you?",
                    response_format="pcm") as response:
                async for chunk in response.iter_bytes():
                    received += chunk
        await client.close()
    assert 0 < len(received) <= 24000 // 10 * 2  # at most the first 100 ms chunk


async def test_a_transcription_500_reaches_the_stt_service_as_an_error(pipeline: Any) -> None:
    speech = synthesize_speech("book a table", sample_rate_hz=16000)
    chunk = 16000 * 2 // 50
    async with FakeOpenAI() as fake:
        fake.transcripts.append("book a table")
        fake.faults.add("transcription", Fault.http(500), times=3)
        stt = OpenAISTTService(api_key="sk-test", base_url=fake.base_url,
                               settings=OpenAISTTService.Settings(model="gpt-4o-transcribe"))
        async with pipeline([stt], audio_in_rate=16000) as p:
            await p.send(VADUserStartedSpeakingFrame())
            await p.send(*[InputAudioRawFrame(speech[i:i + chunk], 16000, 1)
                           for i in range(0, len(speech), chunk)])
            await p.send(VADUserStoppedSpeakingFrame())
            await p.wait_for(lambda: bool(p.up(ErrorFrame)))
    assert not p.down(TranscriptionFrame)
    assert fake.transcripts == ["book a table"]  # no upload was transcribed


def test_faults_name_the_request_kinds_and_faults_a_fake_supports() -> None:
    fake = FakeOpenAI()
    with pytest.raises(ValueError, match="chat, speech, transcription"):
        fake.faults.add("embeddings", Fault.http(500))
    with pytest.raises(ValueError, match="support hang, http"):
        fake.faults.add("transcription", Fault.cut())
    with pytest.raises(ValueError, match="error status"):
        Fault.http(200)
