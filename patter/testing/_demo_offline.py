"""The demo's real offline call: the caller's lines spoken by espeak-ng, heard by Moonshine,
answered by a rule agent and spoken by Piper, through the whole Patter path on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from patter._events import Event
from patter._rule_agent import Rule, RuleAgent
from patter.audio import PHONE_RATE_HZ, frame_levels_dbfs
from patter.testing._demo_record import write_call_wav, write_timeline_png
from patter.testing._phone_playout import VOICED_DBFS
from patter.testing.audio import synthesize_speech
from patter.testing.harness import LoopbackWorld, agent_turn_over, wait_for
from patter.testing.phone import SimulatedPhone

CALLER_VOICE = "en-gb"
"""espeak-ng's British voice: the caller sounds unlike Piper's American agent."""
HOURS = "What time do you open?"
MENU = "Tell me about your menu please."
BOOK = "I would like to book a table."
MENU_REPLY = ("Our menu changes every week. Tonight we have a tomato soup, a mushroom "
              "risotto, a grilled sea bass with lemon, and a chocolate tart for dessert. "
              "All our bread is baked here every morning.")
RULES = (
    Rule("We are open from noon to ten, every day.", ["open", "hours", "time"]),
    Rule(MENU_REPLY, ["menu"]),
    Rule("Press 1 to book for tonight, or 2 for tomorrow.", ["book", "table"]),
    Rule("Your table for tonight is booked. Goodbye!", keys="1", end_call=True),
    Rule("Your table for tomorrow is booked. Goodbye!", keys="2", end_call=True),
)
BARGE_IN_AFTER_S = 2.0
"""How much of the long menu reply the caller hears before talking over it."""

Show = Callable[[str, str], None]


def trailing_silence_s(pcm: bytes) -> float:
    """How long ``pcm`` (16-bit, 8 kHz) goes on after its last voiced 20 ms frame."""
    voiced = (frame_levels_dbfs(pcm, sample_rate_hz=PHONE_RATE_HZ, frame_ms=20)
              > VOICED_DBFS).nonzero()[0]
    last_end = (voiced[-1] + 1) * 0.02 if voiced.size else 0.0
    return max(0.0, len(pcm) / 2 / PHONE_RATE_HZ - last_end)


class _Latency:
    """Reply latency from the phone's timeline: the caller's last cue (the end of the
    speech in a line, or a keypress) → the next agent audio that started playing."""

    def __init__(self) -> None:
        self.cue: float | None = None

    async def of_next_reply(self, phone: SimulatedPhone) -> float | None:
        cue = self.cue
        if cue is None:
            return None
        self.cue = None

        def started() -> list[float]:
            return [e.t for e in phone.events_of("playout_started") if e.t > cue]

        try:
            await phone.timeline.wait(lambda: bool(started()), 15.0, lambda: "no reply")
        except TimeoutError:
            return None
        return started()[0] - cue


async def run_offline_call(world: LoopbackWorld, out: Path, show: Show) -> int:
    """Place the offline call in ``world``, print it live through ``show`` and write
    ``demo-call.wav`` and ``demo-call.png`` into ``out``; 0 if the call went through."""
    lines = [synthesize_speech(text, voice=CALLER_VOICE) for text in (HOURS, MENU, BOOK)]
    phone = world.patter(stt="moonshine", tts="piper", llm=lambda: RuleAgent(RULES),
                         openai_key=None, deepgram_key=None, elevenlabs_key=None)
    agent = phone.agent(
        system_prompt="The host of Chez Patter (rule agent: hours, menu, bookings).",
        first_message="Good evening, Chez Patter, how can I help?",
    )
    ended: list[Event] = []
    latency = _Latency()
    caller: list[SimulatedPhone] = []
    replies: list[asyncio.Task[None]] = []

    async def show_reply(text: str) -> None:
        took = await latency.of_next_reply(caller[0]) if caller else None
        show("agent", text + (f"   ({took:.2f} s after the caller)" if took else ""))

    def on_transcript(event: Event) -> None:
        show("caller", event["text"])
        if caller and not event["text"].startswith("[DTMF"):
            ends = caller[0].events_of("caller_audio_ended")
            latency.cue = (ends[-1].t - trailing_silence_s(lines[len(ends) - 1])
                           if ends else None)

    await world.serve(
        phone, agent,
        on_transcript=on_transcript,
        on_message=lambda e: replies.append(asyncio.ensure_future(show_reply(e["text"]))),
        on_call_end=ended.append,
    )
    print("Patter is serving on loopback; a fake Twilio is ringing it…", flush=True)
    call = await world.call_in()
    if call.phone is None:
        show("call", f"the call did not connect: {call.errors or call.stream_errors}")
        return 1
    caller.append(call.phone)
    said = await _play_script(call.phone, lines, latency)
    await wait_for(lambda: bool(ended), timeout=30, what="the end of the call")
    await asyncio.gather(*replies)
    end = ended[0]
    print(f"\n✅ call ended by {end['ended_by']} after {end['duration']:.1f} s; the caller "
          f"heard {call.phone.heard_voiced_s:.1f} s of agent speech "
          f"({len(call.phone.events_of('clear_received'))} barge-in cut).")
    out.mkdir(parents=True, exist_ok=True)
    seconds = write_call_wav(out / "demo-call.wav", call.phone, said)
    write_timeline_png(out / "demo-call.png", call.phone)
    print(f"💾 {out / 'demo-call.wav'}: {seconds:.0f} s stereo, 8 kHz (left the caller, "
          f"right what the caller heard)\n💾 {out / 'demo-call.png'}: the timeline (blue "
          "caller speech, green agent speech heard, red the barge-in cut)")
    return 0


async def _play_script(phone: SimulatedPhone, lines: list[bytes],
                       latency: _Latency) -> list[bytes]:
    """The caller's side: a question, a long answer cut short, a keypress. Returns the
    lines in the order they were said."""
    hours, menu, book = lines
    await agent_turn_over(phone)  # the disclosure and the greeting
    phone.say(hours)
    await agent_turn_over(phone)
    phone.say(menu)
    heard = phone.heard_voiced_s
    await phone.wait_for_heard(heard + BARGE_IN_AFTER_S, timeout=30)
    phone.say(book)  # talks over the menu
    await agent_turn_over(phone)
    latency.cue = time.monotonic()
    phone.press("1")
    return [hours, menu, book]

