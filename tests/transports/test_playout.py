"""PlayoutLedger, SpokenText and TwilioMediaOutput: what the caller heard, from Twilio's marks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from patter._pipecat import (
    AggregatedTextFrame,
    InterruptionFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    TTSTextFrame,
)
from patter.processors import EchoReference
from patter.processors.checkpoint import PlayoutCheckpointFrame
from patter.testing.audio import tone
from patter.testing.harness import wait_for
from patter.transports.heard_text import SpokenText
from patter.transports.playout import PlayoutLedger
from patter.transports.twilio_output import TwilioMediaOutput
from patter.transports.twilio_transport import phone_transport_params

RATE = 8000


class Clock:
    """A hand-moved clock for the ledger."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    """Let other tasks run (to show that something did NOT happen)."""
    for _ in range(20):
        await asyncio.sleep(0)


def spoken(text: str, *, pts: int | None = None) -> TTSTextFrame:
    frame = TTSTextFrame(text, text_type="sentence")
    frame.pts = pts
    return frame


def announced(text: str) -> AggregatedTextFrame:
    frame = AggregatedTextFrame(text, text_type="sentence")
    frame.will_be_spoken = True
    return frame


# ----- the ledger --------------------------------------------------------------------------


async def test_a_mark_echo_moves_the_heard_position_and_signals_the_frames_heard() -> None:
    ledger = PlayoutLedger()
    assert ledger.note_sent(40) == "40"
    assert ledger.hold("after 40")
    assert ledger.note_sent(40) == "80"
    assert ledger.hold("after 80")
    assert ledger.unheard_ms == 80 and not ledger.frames_heard.is_set()

    await ledger.on_mark("40")  # the input only records it; the output takes the frames
    assert ledger.heard_ms == 40 and ledger.frames_heard.is_set()
    assert ledger.take_heard() == ["after 40"] and not ledger.frames_heard.is_set()
    await ledger.on_mark("80")
    assert ledger.take_heard() == ["after 80"] and ledger.unheard_ms == 0
    assert not ledger.hold("nothing unheard: goes at once")
    await ledger.on_mark("40")  # stale
    await ledger.on_mark("not-ours")
    assert ledger.heard_ms == 80


async def test_sending_waits_while_more_than_the_lead_is_unheard() -> None:
    ledger = PlayoutLedger(lead_ms=100, rtt_ms=0)
    for _ in range(3):
        ledger.note_sent(40)
    waiting = asyncio.create_task(ledger.wait_for_room())
    await settle()
    assert not waiting.done()  # 120 ms unheard > 100 ms lead
    await ledger.on_mark("40")
    await asyncio.wait_for(waiting, 5)


async def test_a_pause_holds_interruptible_audio_only_until_resume() -> None:
    ledger = PlayoutLedger()
    assert ledger.pause()
    interruptible = asyncio.create_task(ledger.wait_for_room())
    await ledger.wait_for_room(interruptible=False)  # the disclosure is never paused
    await settle()
    assert not interruptible.done()
    await ledger.resume()
    await asyncio.wait_for(interruptible, 5)


async def test_the_disclosure_cannot_be_paused_or_cleared_while_it_plays() -> None:
    ledger = PlayoutLedger()
    ledger.note_sent(40, protected=True)
    assert ledger.has_protected_audio_playing()
    assert not ledger.pause()
    await ledger.on_mark("40")
    assert not ledger.has_protected_audio_playing()
    assert ledger.pause()


async def test_clear_drops_the_unheard_releases_uninterruptible_and_wakes_senders() -> None:
    ledger = PlayoutLedger(lead_ms=0, rtt_ms=0, clock=Clock())
    ledger.note_sent(40)
    ledger.note_sent(40)
    checkpoint = PlayoutCheckpointFrame(label="after the reply")
    ledger.hold(spoken("a sentence never heard"))
    ledger.hold(checkpoint)
    sender = asyncio.create_task(ledger.wait_for_room())
    await ledger.on_mark("40")

    cut = await ledger.clear()
    await asyncio.wait_for(sender, 5)
    assert cut.cleared and cut.heard_ms == 40 and cut.sent_ms == 80
    assert ledger.take_heard() == [checkpoint]
    assert ledger.cuts == [cut]
    await ledger.on_mark("80")  # Twilio echoes the cleared marks at once: stale
    assert ledger.heard_ms == 80 and ledger.unheard_ms == 0


async def test_a_clear_with_nothing_playing_is_not_a_cut() -> None:
    ledger = PlayoutLedger()
    ledger.note_sent(40)
    await ledger.on_mark("40")
    cut = await ledger.clear()
    assert not cut.cleared and ledger.cuts == []


async def test_a_clear_while_audio_is_held_back_by_a_pause_is_a_cut() -> None:
    ledger = PlayoutLedger()
    ledger.note_sent(40)
    await ledger.on_mark("40")
    ledger.pause()
    sender = asyncio.create_task(ledger.wait_for_room())
    await settle()
    cut = await ledger.clear()
    await asyncio.wait_for(sender, 5)
    assert cut.cleared and not ledger.paused


async def test_the_heard_estimate_runs_with_the_clock_but_never_past_the_next_mark() -> None:
    clock = Clock()
    ledger = PlayoutLedger(clock=clock)
    for _ in range(3):
        ledger.note_sent(40)
    clock.now += 0.025
    assert ledger.heard_estimate_ms() == pytest.approx(25)
    clock.now += 0.5  # no echo yet: playout cannot be past the first mark
    assert ledger.heard_estimate_ms() == 40
    await ledger.on_mark("80")
    clock.now += 0.01
    assert ledger.heard_estimate_ms() == pytest.approx(90)


async def test_the_round_trip_is_measured_from_audio_sent_into_an_empty_buffer() -> None:
    clock = Clock()
    ledger = PlayoutLedger(rtt_ms=100, clock=clock)
    ledger.note_sent(40)
    ledger.note_sent(40)
    clock.now += 0.070  # 40 ms of audio played, echo took 30 ms more
    await ledger.on_mark("40")
    assert ledger.rtt_ms == pytest.approx(30)
    clock.now += 0.3
    await ledger.on_mark("80")  # sent behind other audio: says nothing about the trip
    assert ledger.rtt_ms == pytest.approx(30)


async def test_the_echo_reference_follows_the_marks_with_silence_before_a_start() -> None:
    clock = Clock()
    ledger = PlayoutLedger(clock=clock)
    reference = EchoReference()
    reference.follow(ledger)
    first, second = tone(300, 0.04), tone(500, 0.04)
    reference.add(0, first, after_silence=True)
    ledger.note_sent(40)
    reference.add(40, second, after_silence=False)
    ledger.note_sent(40)
    assert reference.played_audio(60) == b""  # nothing played yet
    await ledger.on_mark("80")
    assert reference.played_audio(60) == first[-20 * 16:] + second
    assert reference.played_audio(100) == bytes(20 * 16) + first + second  # silence before it
    clock.now += 0.2
    assert reference.played_audio(100) == b""  # playout ended longer ago than that


# ----- the text the caller heard -------------------------------------------------------------


def test_a_sentence_played_halfway_is_heard_halfway() -> None:
    text = SpokenText()
    text.note_announced("one two three four")
    text.note_audio_arrived(2000)
    text.note_text_arrived("one two three four", word_level=False)
    text.note_audio_sent(0)  # the sentence's audio went out; its text frame is still behind it
    assert text.heard(1000) == "one two"
    text.note_text_sent("one two three four", 2000)
    assert text.heard(1500) == "one two three"
    assert text.heard(2000) == "one two three four"


def test_a_sentence_still_streaming_from_the_tts_is_estimated_at_a_speaking_rate() -> None:
    text = SpokenText()
    text.note_announced("one two three four five six seven eight nine ten")
    text.note_audio_arrived(500)
    text.note_audio_sent(0)
    assert text.heard(2000) == "one two three four five"  # 10 words take ~4 s at 2.5 words/s


def test_a_word_still_playing_is_not_heard() -> None:
    text = SpokenText()
    for word, start, end in (("Our", 0, 240), ("restaurant", 240, 900)):
        text.note_audio_arrived(end - start)
        text.note_text_arrived(word, word_level=True)
        text.note_audio_sent(start)
        text.note_text_sent(word, end)
    text.note_audio_sent(900)  # "opens" is playing; the TTS reports it once complete
    assert text.heard(1000) == "Our restaurant"
    assert text.heard(600) == "Our"


def test_a_turn_heard_to_its_end_is_forgotten() -> None:
    text = SpokenText()
    text.note_audio_sent(0)
    text.note_text_sent("Hello there.", 1000)
    text.note_turn_end(1000)
    text.note_audio_sent(1000)
    text.note_text_sent("Second reply.", 2000)
    text.forget_heard(1400)
    assert text.heard(1400) == ""  # 40 % of a two-word sentence: no word complete yet
    assert text.heard(1500) == "Second"
    assert text.heard(2000) == "Second reply."


# ----- the output transport -------------------------------------------------------------------


class FakeSocket:
    """The output's side of a Media Stream: records what would go to Twilio."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send_media(self, payload_b64: str) -> bool:
        self.sent.append(("media", payload_b64))
        return True

    async def send_mark(self, name: str) -> bool:
        self.sent.append(("mark", name))
        return True

    async def send_clear(self) -> bool:
        self.sent.append(("clear", ""))
        return True

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.sent]

    def marks(self) -> list[str]:
        return [name for kind, name in self.sent if kind == "mark"]


def output(
    ledger: PlayoutLedger, heard: list[str] | None = None
) -> tuple[TwilioMediaOutput, FakeSocket]:
    socket = FakeSocket()

    async def on_interrupted(text: str) -> None:
        if heard is not None:
            heard.append(text)

    return TwilioMediaOutput(socket, ledger, phone_transport_params(),  # type: ignore[arg-type]
                             on_interrupted=on_interrupted, end_timeout_s=1.0), socket


def reply_audio(seconds: float) -> TTSAudioRawFrame:
    return TTSAudioRawFrame(audio=tone(220, seconds), sample_rate=RATE, num_channels=1)


async def play_until(ledger: PlayoutLedger, socket: FakeSocket, position_ms: float) -> None:
    """Echo the marks sent so far up to ``position_ms``, as Twilio does as it plays."""
    for name in socket.marks():
        if float(name) <= position_ms:
            await ledger.on_mark(name)


async def test_the_output_sends_a_mark_per_chunk_and_holds_text_until_heard(pipeline: Any) -> None:
    ledger = PlayoutLedger(lead_ms=1000, stall_timeout_s=60)
    transport, socket = output(ledger)
    async with pipeline([transport], audio_out_rate=RATE) as p:
        await p.send(LLMFullResponseStartFrame(), announced("Hello there."), TTSStartedFrame(),
                     reply_audio(0.4), spoken("Hello there."), TTSStoppedFrame(),
                     LLMFullResponseEndFrame())
        await wait_for(lambda: ledger.sent_ms >= 400)
        assert socket.kinds()[:4] == ["media", "mark", "media", "mark"]
        assert socket.marks()[:3] == ["40", "80", "120"]
        await settle()
        assert p.down(TTSTextFrame) == []  # sent, not yet heard
        await play_until(ledger, socket, 400)
        await p.wait_for(lambda: p.down(LLMFullResponseEndFrame))
    assert [f.text for f in p.down(TTSTextFrame)] == ["Hello there."]


async def test_an_interruption_clears_twilio_and_reports_the_heard_part(pipeline: Any) -> None:
    ledger = PlayoutLedger(lead_ms=1000, stall_timeout_s=60, clock=Clock())
    heard: list[str] = []
    transport, socket = output(ledger, heard)
    sentence = "one two three four five six seven eight"
    async with pipeline([transport], audio_out_rate=RATE) as p:
        await p.send(LLMFullResponseStartFrame(), announced(sentence), TTSStartedFrame(),
                     reply_audio(2.0), spoken(sentence), TTSStoppedFrame(),
                     LLMFullResponseEndFrame())
        await wait_for(lambda: ledger.sent_ms >= 1000)
        await play_until(ledger, socket, 1000)
        await p.send(InterruptionFrame())
        await wait_for(lambda: bool(heard))
        sent_at_clear = len(socket.sent)
        await settle()

    assert "clear" in socket.kinds()
    after_clear = socket.kinds()[socket.kinds().index("clear"):]
    assert after_clear.count("media") == 0 and len(socket.sent) == sent_at_clear
    assert heard == ["one two three four"]
    assert p.down(TTSTextFrame) == [] and p.down(LLMFullResponseEndFrame) == []
    assert ledger.cuts[0].heard_ms == 1000


async def test_an_interruption_during_the_disclosure_does_not_clear_it(pipeline: Any) -> None:
    ledger = PlayoutLedger(lead_ms=1000, stall_timeout_s=60)
    heard: list[str] = []
    transport, socket = output(ledger, heard)
    disclosure = reply_audio(0.8)
    disclosure.interruptible = False
    async with pipeline([transport], audio_out_rate=RATE) as p:
        await p.send(disclosure)
        await wait_for(lambda: ledger.sent_ms >= 800)
        await play_until(ledger, socket, 200)
        await p.send(InterruptionFrame())
        await p.wait_for(lambda: p.down(InterruptionFrame))
        await settle()
    assert "clear" not in socket.kinds() and heard == []
    assert ledger.cuts == []


async def test_word_timed_text_travels_with_the_audio_and_ends_after_the_last_word(
        pipeline: Any) -> None:
    ledger = PlayoutLedger(lead_ms=1000, stall_timeout_s=60)
    transport, socket = output(ledger)
    async with pipeline([transport], audio_out_rate=RATE) as p:
        # Word frames carry presentation times on Pipecat's clock (ElevenLabs alignment);
        # the response's end frame carries the last word's, which it would overtake.
        await p.send(LLMFullResponseStartFrame(), TTSStartedFrame(),
                     reply_audio(0.2), spoken("Good", pts=10**12),
                     reply_audio(0.2), spoken("morning.", pts=10**12 + 2 * 10**8))
        end = LLMFullResponseEndFrame()
        end.pts = 10**12 + 2 * 10**8
        await p.send(TTSStoppedFrame(), end)
        await wait_for(lambda: ledger.sent_ms >= 400)
        await play_until(ledger, socket, 400)
        await p.wait_for(lambda: p.down(LLMFullResponseEndFrame))
    order = [type(f).__name__ for f in p.downstream.frames
             if isinstance(f, (TTSTextFrame, LLMFullResponseEndFrame))]
    assert order == ["TTSTextFrame", "TTSTextFrame", "LLMFullResponseEndFrame"]
