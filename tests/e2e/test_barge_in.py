"""Barge-in end to end: the caller talks over the agent, Twilio is cleared, the LLM learns what
was heard."""

from __future__ import annotations

from typing import Any

from patter._pipeline import CallPipeline
from patter.processors import BargeInGuard
from patter.testing.audio import best_match, synthesize_speech, tone
from patter.testing.harness import LoopbackWorld, openai_speech_at_8k, wait_for
from patter.testing.scenes import (
    ANSWER,
    INTERRUPTION,
    QUESTION,
    REPLY,
    SENTENCES,
    proportional_words,
    reply_playing,
    script,
)


def elevenlabs_words(played_ms: float) -> int:
    """Words of REPLY complete after ``played_ms``, by the fake ElevenLabs' alignment
    (characters spread evenly over each sentence's audio)."""
    count = 0
    for sentence in SENTENCES:
        duration_ms = len(synthesize_speech(sentence)) / 16
        chars = len(sentence) + 1  # the fake aligns the text plus a trailing space
        start = 0
        for word in sentence.split():
            end_ms = (start + len(word)) * duration_ms / chars
            if end_ms > played_ms:
                return count
            count += 1
            start += len(word) + 1
        played_ms -= duration_ms
    return count


def assistant_before_last_user(request: dict[str, Any]) -> str:
    messages = request["messages"]
    assert messages[-1] == {"role": "user", "content": INTERRUPTION}
    assert messages[-2]["role"] == "assistant"
    return str(messages[-2]["content"])


async def test_talking_over_a_long_reply_cuts_it_where_the_caller_was(world: LoopbackWorld) -> None:
    scene = await reply_playing(world)
    phone, before = scene.phone, scene.before
    voiced = phone.heard_voiced_s
    await phone.wait_for_heard(voiced + 2.5, timeout=30)

    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    played_ms = (len(phone.heard_pcm()) - before) / 16
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)
    await phone.wait_until_quiet(quiet_s=0.8, timeout=30)

    # The caller heard the start of the reply, none of its end, then the answer.
    heard = phone.heard_pcm()
    assert best_match(heard[before:], openai_speech_at_8k(SENTENCES[0])[2000:10000]) > 0.8
    assert best_match(heard, openai_speech_at_8k(SENTENCES[2])[4000:20000]) < 0.5
    after_cut = heard[before + int(played_ms * 16):]
    assert best_match(after_cut, openai_speech_at_8k(ANSWER)[2000:8000]) > 0.8
    # The LLM was told exactly the words heard: a prefix of the reply, cut where playout stood.
    cut = assistant_before_last_user(world.openai.chat_requests[1])
    words = cut.split()
    assert words == REPLY.split()[: len(words)]
    assert abs(len(words) - proportional_words(played_ms)) <= 1
    assert 3 <= len(words) < len(REPLY.split())
    history = await scene.history_at_end()
    assert [(e["role"], e["text"]) for e in history[-4:]] == [
        ("user", QUESTION), ("assistant", cut), ("user", INTERRUPTION), ("assistant", ANSWER)]


async def test_no_agent_audio_plays_after_the_clear(world: LoopbackWorld) -> None:
    phone = (await reply_playing(world)).phone
    await phone.wait_for_heard(phone.heard_voiced_s + 1.5, timeout=30)
    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    voiced_at_clear = phone.heard_voiced_s
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    await phone.wait_for_heard(voiced_at_clear + 1.0, timeout=30)

    events = [e.kind for e in phone.events]
    after_clear = events[events.index("clear_received"):]
    # Between the clear and the answer's first audio, nothing of the cut reply arrives.
    first_media = after_clear.index("media_received")
    assert "playout_started" not in after_clear[:first_media]
    answer_start = [e for e in phone.events if e.kind == "media_received"
                    and e.t > phone.events_of("clear_received")[0].t][0].t
    speech = phone.events_of("caller_audio_started")[-1].t
    # The agent fell silent at the first sign of speech, before the VAD confirmed it:
    # Twilio's buffer was already empty when the clear came.
    stops = [e.t for e in phone.events_of("playout_stopped") if speech < e.t < answer_start]
    assert stops and stops[0] < phone.events_of("clear_received")[0].t
    assert phone.events_of("clear_received")[0].data["dropped_bytes"] == 0


async def test_a_short_noise_does_not_interrupt_and_the_reply_is_heard_whole(
        world: LoopbackWorld) -> None:
    scene = await reply_playing(world)
    phone, before = scene.phone, scene.before
    await phone.wait_for_heard(phone.heard_voiced_s + 1.5, timeout=30)

    phone.say(tone(440, 0.15, amplitude=0.6))
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)
    await phone.wait_until_quiet(quiet_s=1.0, timeout=40)

    assert phone.received_of("clear") == []
    assert len(world.openai.chat_requests) == 1
    heard = phone.heard_pcm()[before:]
    for sentence in SENTENCES:
        audio = openai_speech_at_8k(sentence)
        middle = len(audio) // 4 * 2
        assert best_match(heard, audio[middle: middle + 8000]) > 0.8
    ending = openai_speech_at_8k(SENTENCES[-1])[-9000:-1000]
    assert best_match(heard, ending) > 0.8  # to the very end
    history = await scene.history_at_end()
    assert (history[-1]["role"], history[-1]["text"]) == ("assistant", REPLY)


async def test_speech_during_the_disclosure_neither_clears_it_nor_is_lost(
        world: LoopbackWorld) -> None:
    world.openai.transcripts.append(QUESTION)
    world.openai.reply_with(ANSWER)
    phone = world.patter()
    agent = phone.agent("You are a restaurant host.")
    await world.serve(phone, agent)
    disclosure = await phone.disclosure_audio(agent)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_for_heard(0.5, timeout=30)

    call.phone.say_text(QUESTION)
    await wait_for(lambda: ANSWER in world.openai.spoken, timeout=30)
    await call.phone.wait_for_heard(len(disclosure) / 16000 + 1.0, timeout=30)
    await call.phone.wait_until_quiet(quiet_s=0.8, timeout=30)

    assert call.phone.received_of("clear") == []
    heard = call.phone.heard_pcm()
    assert best_match(heard, disclosure[-12000:-2000]) > 0.8  # its end was heard too
    assert world.openai.chat_requests[0]["messages"][-1] == {"role": "user", "content": QUESTION}
    assert best_match(heard, openai_speech_at_8k(ANSWER)[2000:8000]) > 0.8


async def test_the_agent_hearing_its_own_echo_does_not_interrupt_itself(
        world: LoopbackWorld) -> None:
    scene = await reply_playing(world)
    phone, before = scene.phone, scene.before
    # A loud speakerphone, no echo canceller:
    phone.microphone.echo_gain, phone.microphone.echo_delay_s = 0.3, 0.12
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)
    await phone.wait_until_quiet(quiet_s=1.0, timeout=40)

    assert phone.received_of("clear") == []
    assert len(world.openai.chat_requests) == 1
    ending = openai_speech_at_8k(SENTENCES[-1])[-9000:-1000]
    assert best_match(phone.heard_pcm()[before:], ending) > 0.8

    phone.microphone.echo_gain = 0.3  # and the caller can still barge in over the echo
    world.openai.reply_with("Sorry, what was that?")
    phone.say_text(QUESTION)
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)
    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    history = await scene.history_at_end()
    assert any(e["role"] == "user" and e["text"] == INTERRUPTION for e in history)


async def test_with_elevenlabs_the_cut_falls_between_words_by_its_timestamps(
        world: LoopbackWorld) -> None:
    scene = await reply_playing(world, tts="elevenlabs")
    phone, before = scene.phone, scene.before
    await phone.wait_for_heard(phone.heard_voiced_s + 2.5, timeout=30)

    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    played_ms = (len(phone.heard_pcm()) - before) / 16
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)

    cut = assistant_before_last_user(world.openai.chat_requests[1])
    words = cut.split()
    assert words == REPLY.split()[: len(words)]
    assert abs(len(words) - elevenlabs_words(played_ms)) <= 1
    assert 3 <= len(words) < len(REPLY.split())
    history = await scene.history_at_end()
    assert ("assistant", cut) in [(e["role"], e["text"]) for e in history]


async def test_with_deepgram_streaming_stt_the_caller_barges_in_and_is_answered(
        world: LoopbackWorld) -> None:
    scene = await reply_playing(world, stt="deepgram")
    phone = scene.phone
    await phone.wait_for_heard(phone.heard_voiced_s + 2.0, timeout=30)

    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.0, timeout=30)

    cut = assistant_before_last_user(world.openai.chat_requests[1])
    assert REPLY.startswith(cut) and 3 <= len(cut.split()) < len(REPLY.split())
    assert best_match(phone.heard_pcm(), openai_speech_at_8k(ANSWER)[2000:8000]) > 0.8
    assert world.openai.transcribed_audio == []  # Deepgram transcribed the call
    history = await scene.history_at_end()
    assert [(e["role"], e["text"]) for e in history[-4:]] == [
        ("user", QUESTION), ("assistant", cut), ("user", INTERRUPTION), ("assistant", ANSWER)]


async def test_a_keypress_cut_reaches_the_llm_after_the_words_heard(world: LoopbackWorld) -> None:
    scene = await reply_playing(world)
    world.openai.replies[:] = []
    world.openai.reply_with("You pressed one.")
    await scene.phone.wait_for_heard(scene.phone.heard_voiced_s + 2.0, timeout=30)

    scene.phone.press("1")
    await scene.phone.wait_for_received("clear", timeout=10)
    await wait_for(lambda: len(world.openai.chat_requests) == 2, timeout=30)

    messages = world.openai.chat_requests[1]["messages"]
    assert [m["role"] for m in messages[-3:]] == ["user", "assistant", "user"]
    cut, key = messages[-2]["content"], messages[-1]["content"]
    assert key == "[DTMF: 1]" and REPLY.startswith(cut) and 3 <= len(cut.split())
    history = await scene.history_at_end()
    assert [(e["role"], e["text"]) for e in history[-3:]] == [
        ("assistant", cut), ("user", "[DTMF: 1]"), ("assistant", "You pressed one.")]


async def test_a_guard_swapped_in_by_customize_pipeline_mutes_the_echo_and_cuts_the_agent(
        world: LoopbackWorld) -> None:
    guards: list[BargeInGuard] = []

    def patient_guard(pipeline: CallPipeline) -> None:  # as docs/barge-in.md shows
        default = pipeline["barge_in"]
        assert isinstance(default, BargeInGuard)
        guards.append(BargeInGuard(default.speech, vad=default.vad, quiet_resume_ms=300))
        pipeline.replace("barge_in", guards[0])

    script(world)
    patter = world.patter()
    await world.serve(patter, patter.agent("You are a restaurant host.",
                                           customize_pipeline=patient_guard))
    call = await world.call_in()
    assert call.phone is not None
    phone = call.phone
    await phone.wait_until_quiet(quiet_s=0.6, timeout=30)
    phone.microphone.echo_gain, phone.microphone.echo_delay_s = 0.3, 0.12
    phone.say_text(QUESTION)
    await wait_for(lambda: len(world.openai.chat_requests) == 1, timeout=30)
    await phone.wait_for_heard(phone.heard_voiced_s + 1.5, timeout=30)
    assert phone.received_of("clear") == [] and guards[0].echo_frames > 0

    phone.say_text(INTERRUPTION)
    await phone.wait_for_received("clear", timeout=10)
    assert guards[0].interruptions == 1
