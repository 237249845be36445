"""``patter simulate``: a call to your own agent through the simulated phone, no number needed.

The call runs in a ``LoopbackWorld`` (``patter.testing``): a fake Twilio rings the agent's
server over a real signed webhook and Media Stream, and a ``SimulatedPhone`` is the
caller. With ``fakes`` the vendors are the loopback fakes too: the fake STT "hears" each
``say`` turn as its text (it cannot recognise speech; a WAV turn is heard as its file
name) and the fake LLM answers ``You said: …`` unless a test scripts it. With ``real``
the agent's own vendors and keys (from the environment) hear and answer. With
``offline`` Moonshine really hears the caller's lines (spoken by espeak-ng) and Piper
speaks (``with_offline_speech``); the agent's own LLM stays, on the fake OpenAI if it
is OpenAI, so no key is needed.

The agent's module builds its ``Patter`` from the environment when it is imported, so
the import runs under the world's settings (``LoopbackWorld.environment``) and the
process environment is restored right after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from patter._events import Event
from patter._target import Target, load_target
from patter._vendors import PIPER_VOICE, require_offline_extra
from patter.audio import PHONE_RATE_HZ
from patter.errors import PatterConfigError
from patter.testing.audio import read_wav, resample, write_wav
from patter.testing.fake_twilio import FakeCall, OutboundScript
from patter.testing.harness import CALLEE_NUMBER, LoopbackWorld, agent_turn_over
from patter.testing.phone import SimulatedPhone

Mode = Literal["fakes", "real", "offline"]
TurnKind = Literal["say", "dtmf", "wav"]
Show = Callable[[str, str], None]
"""Prints one line of the call: (who, text), who being ``caller``, ``agent`` or ``call``."""

END_TIMEOUT_S = 20.0


class CallLines(TypedDict):
    """The callbacks through which a simulated call is shown and followed."""

    on_call_end: Callable[[Event], None]
    on_transcript: Callable[[Event], None]
    on_message: Callable[[Event], None]


@dataclass(frozen=True)
class Turn:
    """One thing the caller does, in order: say ``value``, press keys, or play a WAV file."""

    kind: TurnKind
    value: str


@dataclass(frozen=True)
class Outbound:
    """Have the agent call the simulated phone (as ``phone.call()`` does) instead."""

    machine_detection: bool = False
    voicemail_message: str = ""
    answered_by: str = "human"
    """What the fake Twilio's answering machine detection says (``machine_end_beep``…)."""


@dataclass
class Outcome:
    """How the simulated call went."""

    end: Event | None
    """The ``on_call_end`` event (None if the call never connected)."""
    call: FakeCall | None
    """The call as the fake Twilio saw it (its ``dials``, ``updates``, recordings)."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the call connected and ended cleanly."""
        return self.end is not None and not self.problems


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then restore what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_in_world(world: LoopbackWorld, spec: str, mode: Mode) -> Target:
    """Import the agent named by ``spec`` wired to ``world``: its Twilio, number and URL
    always, and with ``fakes`` its vendors too (``real`` keeps the environment's)."""
    with environment(world.environment(vendors=mode != "real")):
        target = load_target(spec)
    return with_offline_speech(target) if mode == "offline" else target


def with_offline_speech(target: Target) -> Target:
    """``target`` with its agent hearing through Moonshine and speaking with Piper (kept
    as they are if the agent is offline already); a ``PatterConfigError`` naming the fix
    if the offline extra is not installed."""
    require_offline_extra("stt", "moonshine")
    require_offline_extra("tts", "piper")
    agent = target.agent
    if agent.tts != "piper":
        agent = dataclasses.replace(agent, tts="piper", voice=PIPER_VOICE)
    if agent.stt != "moonshine":
        agent = dataclasses.replace(agent, stt="moonshine")
    return dataclasses.replace(target, agent=agent)


def script_fake_stt(world: LoopbackWorld, turns: list[Turn]) -> None:
    """Have the fake STTs hear each spoken turn: its text, or a WAV's file name."""
    heard = [
        turn.value if turn.kind == "say" else f"(recording {Path(turn.value).name})"
        for turn in turns
        if turn.kind != "dtmf"
    ]
    world.openai.transcripts.extend(heard)
    world.deepgram.transcripts.extend(heard)


def wav_at_8k(path: str) -> bytes:
    """A 16-bit mono WAV file's audio at the phone's 8 kHz."""
    try:
        pcm, rate = read_wav(path)
    except (OSError, ValueError, EOFError) as exc:
        raise PatterConfigError(
            f"--wav {path}: cannot play it ({exc}); give a 16-bit mono WAV file."
        ) from None
    return resample(pcm, rate, PHONE_RATE_HZ)


async def run_call(
    world: LoopbackWorld,
    target: Target,
    turns: list[Turn],
    *,
    show: Show,
    outbound: Outbound | None = None,
    save_wav: Path | None = None,
) -> Outcome:
    """Place one call between the simulated phone and ``target``'s agent, play ``turns``
    (each once the agent has finished speaking), hang up and return how it went."""
    recordings = {turn.value: wav_at_8k(turn.value) for turn in turns if turn.kind == "wav"}
    ended: list[Event] = []
    over = asyncio.Event()

    def on_call_end(event: Event) -> None:
        ended.append(event)
        over.set()

    callbacks: CallLines = {
        "on_call_end": on_call_end,
        "on_transcript": lambda event: show("caller", event["text"]),
        "on_message": lambda event: show("agent", event["text"]),
    }
    try:
        call = await (_dial_out(world, target, outbound, callbacks) if outbound else
                      _ring_in(world, target, callbacks))
        if call.phone is None:
            return Outcome(None, call, problems=call.errors + call.stream_errors or [
                "the call did not connect"
            ])
        caller = call.phone
        if outbound is None or outbound.answered_by == "human":
            await _play_turns(caller, turns, recordings, over, show)
        if not over.is_set() and outbound is not None and outbound.answered_by != "human":
            await asyncio.wait_for(over.wait(), 60.0)  # the voicemail, then the hang-up
        if not over.is_set():
            await caller.hang_up()
        await asyncio.wait_for(over.wait(), END_TIMEOUT_S)
        if save_wav is not None:
            write_wav(save_wav, caller.heard_pcm())
        return Outcome(ended[0], call)
    finally:
        await target.phone.close()


async def _ring_in(
    world: LoopbackWorld, target: Target, callbacks: CallLines
) -> FakeCall:
    await world.serve(target.phone, target.agent, **callbacks)
    return await world.call_in()


async def _dial_out(
    world: LoopbackWorld,
    target: Target,
    outbound: Outbound,
    callbacks: CallLines,
) -> FakeCall:
    world.twilio.next_outbound = OutboundScript(answered_by=outbound.answered_by)
    await world.call_out(
        target.phone,
        target.agent,
        machine_detection=outbound.machine_detection,
        voicemail_message=outbound.voicemail_message,
        **callbacks,
    )
    call = await world.twilio.wait_for_call(lambda c: c.to == CALLEE_NUMBER)
    try:
        await call.wait_stream(timeout=15.0)
    except RuntimeError:
        pass  # never connected: run_call reports the call's errors
    return call


async def _play_turns(
    caller: SimulatedPhone,
    turns: list[Turn],
    recordings: Mapping[str, bytes],
    over: asyncio.Event,
    show: Show,
) -> None:
    await _agent_turn(caller, over)  # the disclosure and the first message
    for turn in turns:
        if over.is_set():
            show("call", "the call ended before the caller's remaining turns")
            return
        if turn.kind == "say":
            caller.say_text(turn.value)
        elif turn.kind == "wav":
            caller.say(recordings[turn.value])
        else:
            for key in turn.value:
                caller.press(key)
        if not await _agent_turn(caller, over) and not over.is_set():
            show("call", "(the agent did not answer; the caller goes on)")


async def _agent_turn(caller: SimulatedPhone, over: asyncio.Event) -> bool:
    """``agent_turn_over``, cut short when the call ends (a transfer, the agent's goodbye)."""
    turn = asyncio.ensure_future(agent_turn_over(caller))
    ending = asyncio.ensure_future(over.wait())
    await asyncio.wait({turn, ending}, return_when=asyncio.FIRST_COMPLETED)
    ending.cancel()
    if not turn.done():
        turn.cancel()
        await asyncio.gather(turn, return_exceptions=True)
        return False
    return turn.result()
