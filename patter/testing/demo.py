"""An offline demo: a whole phone call with no account and no key (``make demo``).

Everything runs on 127.0.0.1: a fake Twilio rings Patter's signed webhook and streams
the call over a real Media Streams WebSocket to a simulated phone. With the offline extra
(``patter[offline]``) the call is real: the caller's lines, spoken by espeak-ng, are heard
by Moonshine, answered by a rule agent and spoken by Piper (``_demo_offline``), and the
call is written as ``demo-call.wav`` and ``demo-call.png``. Without it, fake OpenAI
servers hear scripted transcripts and answer with espeak-ng speech.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from loguru import logger as _loguru

_loguru.remove()  # Pipecat's banner and debug lines would drown the conversation

from patter._events import Event  # noqa: E402
from patter._vendors import require_offline_extra  # noqa: E402
from patter.errors import PatterConfigError  # noqa: E402
from patter.testing.fake_openai import message_text  # noqa: E402
from patter.testing.harness import LoopbackWorld, agent_turn_over, wait_for  # noqa: E402

CALLER_LINES = (
    "Hi I would like to book a table for two tonight.",
    "Eight o'clock would be perfect thank you.",
)
PICK_UP = "Sorry, I missed that."


def host_reply(messages: list[dict[str, Any]], _tools: list[dict[str, Any]]) -> str:
    """The fake LLM of the demo: answers the caller's last words, whatever the turns."""
    said = next((message_text(m).lower() for m in reversed(messages) if m.get("role") == "user"),
                "")
    if "dtmf: 1" in said:
        reply = "Thank you, your booking is confirmed. Goodbye!"
    elif "eight" in said:
        reply = "Done: a table for two at eight tonight. Press 1 to confirm by keypad."
    elif "table" in said:
        reply = "Of course. What time would you like the table?"
    else:
        reply = "Sorry, could you say that again?"
    if messages and messages[-1].get("role") == "developer":  # a sound with no words cut it
        reply = f"{PICK_UP} {reply}"
    return reply


def _print(role: str, text: str) -> None:
    print(f"  {role:>9} │ {text}", flush=True)


def offline_extra_missing() -> str | None:
    """Why the real offline call cannot run here (the fix included), or None if it can."""
    try:
        require_offline_extra("stt", "moonshine")
        require_offline_extra("tts", "piper")
    except PatterConfigError as exc:
        return str(exc)
    return None


async def run_demo(out: Path = Path(".")) -> int:
    """Place one simulated call and print the conversation as it happens: the real
    offline call when the offline extra is installed (its files written into ``out``),
    else the call on the fakes."""
    missing = offline_extra_missing()
    async with LoopbackWorld() as world:
        if missing is None:
            from patter.testing._demo_offline import run_offline_call

            return await run_offline_call(world, out, _print)
        print("The offline speech engines are missing, so this is the demo on the fakes "
              f"(scripted transcripts, no demo-call.wav). {missing}")
        return await _run_on_fakes(world)


async def _run_on_fakes(world: LoopbackWorld) -> int:
    """The call on the fakes: scripted transcripts, espeak-ng answers."""
    world.openai.transcripts.extend(CALLER_LINES)
    world.openai.responder = host_reply
    phone = world.patter()
    agent = phone.agent(
        system_prompt="You are the host of Chez Patter. Take table bookings politely.",
        first_message="Good evening, Chez Patter, how can I help?",
    )
    ended: list[Event] = []

    async def on_call_start(event: Event) -> None:
        print(
            f"\n📞 call {event['call_sid'][:10]}… from {event['caller']} to {event['callee']}\n"
        )

    await world.serve(
        phone,
        agent,
        on_call_start=on_call_start,
        on_message=lambda e: _print("agent", e["text"]),
        on_transcript=lambda e: _print("caller", e["text"]),
        on_call_end=ended.append,
    )
    print("Patter is serving on loopback; a fake Twilio is ringing it…")
    call = await world.call_in()
    if call.phone is None:
        print("the call did not connect:", call.errors or call.stream_errors, file=sys.stderr)
        return 1
    caller = call.phone

    async def agent_finishes_speaking() -> None:
        if not await agent_turn_over(caller):
            print("  (the agent did not answer that line; the caller goes on)", flush=True)

    await agent_finishes_speaking()
    for line in CALLER_LINES:
        caller.say_text(line)
        await agent_finishes_speaking()
    caller.press("1")
    await agent_finishes_speaking()
    await caller.hang_up()
    await wait_for(lambda: bool(ended), timeout=15)
    end = ended[0]
    print(
        f"\n✅ call ended by {end['ended_by']} after {end['duration']:.1f} s; "
        f"{len(end['transcript'])} messages; the caller heard "
        f"{caller.heard_voiced_s:.1f} s of agent speech."
    )
    return 0


def main() -> None:
    """Entry point of ``python -m patter.testing.demo``."""
    parser = argparse.ArgumentParser(prog="python -m patter.testing.demo", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for demo-call.wav and demo-call.png (default: here)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(run_demo(args.out)))


if __name__ == "__main__":
    main()
