"""Each bundled example runs as ``patter simulate`` runs it: imported under the loopback
world's settings, called through the simulated phone; the fake LLM is scripted where the
example's behaviour depends on what the model decides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from patter._simulate import Outbound, Outcome, Turn, load_in_world, run_call, script_fake_stt
from patter._target import Target
from patter.testing.fake_openai import message_text
from patter.testing.harness import PATTER_NUMBER, LoopbackWorld

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BILLING, SUPPORT = "+15550001111", "+15550002222"


def load(world: LoopbackWorld, example: str) -> Target:
    """Import ``examples/<example>.py:agent`` wired to ``world``."""
    return load_in_world(world, f"{EXAMPLES / example}.py:agent", "fakes")


async def simulate(
    world: LoopbackWorld, example: str, turns: list[Turn], *,
    outbound: Outbound | None = None, target: Target | None = None,
) -> tuple[Outcome, list[tuple[str, str]]]:
    """Run ``examples/<example>.py:agent`` through the simulated phone; returns the outcome
    and the lines ``patter simulate`` would print."""
    lines: list[tuple[str, str]] = []
    target = target or load(world, example)
    script_fake_stt(world, turns)
    outcome = await run_call(
        world, target, turns, show=lambda who, text: lines.append((who, text)), outbound=outbound
    )
    return outcome, lines


def test_every_example_says_what_it_shows_and_how_to_run_it() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in sorted(EXAMPLES.glob("*.py")):
        source = path.read_text()
        header = source.split('"""')[1]
        assert f"patter simulate examples/{path.name}:agent" in header, path.name
        assert 'if __name__ == "__main__":' in source, path.name
        assert f"examples/{path.name}" in readme, f"README does not list {path.name}"


def test_appointment_reminder_is_the_spec_complete_example_as_written() -> None:
    source = (EXAMPLES / "appointment_reminder.py").read_text()
    for line in (
        'twilio_sid=os.environ["TWILIO_SID"],',
        'webhook_url=os.environ["WEBHOOK_URL"],',
        "- Remind them of their upcoming appointment.",
        '"appointment_date": "March 20th at 2:00 PM",',
        "recording=True,",
    ):
        assert line in source


async def test_appointment_reminder_takes_a_keypress_to_confirm(world: LoopbackWorld) -> None:
    world.openai.reply_with("Your appointment is confirmed. Goodbye!")
    outcome, lines = await simulate(world, "appointment_reminder", [Turn("dtmf", "1")])
    assert outcome.ok, outcome.problems
    assert ("agent", "Hello! This is Dr. Smith's office calling with an appointment "
            "reminder.") in lines
    assert ("caller", "[DTMF: 1]") in lines
    assert ("agent", "Your appointment is confirmed. Goodbye!") in lines
    system = message_text(world.openai.chat_requests[0]["messages"][0])
    assert "appointment reminder bot for Dr. Smith's office" in system


async def test_ivr_menu_transfers_on_a_keypress_through_a_twilio_redirect(
    world: LoopbackWorld,
) -> None:
    world.openai.call_tool("transfer_call", {"phone_number": SUPPORT}, say="Connecting you.")
    outcome, lines = await simulate(world, "ivr_menu", [Turn("dtmf", "2")])
    assert outcome.ok, outcome.problems
    assert ("caller", "[DTMF: 2]") in lines
    call = outcome.call
    assert call is not None
    assert [(d.number, d.caller_id) for d in call.dials] == [(SUPPORT, PATTER_NUMBER)]
    assert any("<Dial" in update.get("Twiml", "") for update in call.updates)
    assert outcome.end is not None and outcome.end["transfer_to"] == SUPPORT


async def test_receptionist_transfers_a_billing_question_to_billing(
    world: LoopbackWorld,
) -> None:
    world.openai.call_tool("transfer_call", {"phone_number": BILLING, "reason": "billing"})
    outcome, lines = await simulate(
        world, "receptionist", [Turn("say", "I have a question about my bill.")]
    )
    assert outcome.ok, outcome.problems
    assert ("caller", "I have a question about my bill.") in lines
    assert outcome.call is not None and [d.number for d in outcome.call.dials] == [BILLING]
    tools = [t["function"]["name"] for t in world.openai.chat_requests[0]["tools"]]
    assert "transfer_call" in tools


async def test_outbound_voicemail_leaves_the_voicemail_with_a_machine(
    world: LoopbackWorld,
) -> None:
    target = load(world, "outbound_voicemail")
    voicemail = target.module.VOICEMAIL
    outcome, _ = await simulate(
        world, "outbound_voicemail", [], target=target,
        outbound=Outbound(machine_detection=True, voicemail_message=voicemail,
                          answered_by="machine_end_beep"),
    )
    assert outcome.ok, outcome.problems
    assert outcome.end is not None
    assert outcome.end["voicemail_left"] is True
    assert outcome.end["answered_by"] == "machine_end_beep"
    assert voicemail in world.openai.spoken
    assert world.openai.chat_requests == []  # a machine never reaches the LLM


async def test_custom_pipeline_runs_its_own_processor_in_the_chain(
    world: LoopbackWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome, lines = await simulate(
        world, "custom_pipeline", [Turn("say", "What are your opening hours?")]
    )
    assert outcome.ok, outcome.problems
    printed = capsys.readouterr().out
    assert "stt → transcript_logger → user_context" in printed
    assert "[custom stage] caller said: What are your opening hours?" in printed
    assert ("agent", "You said: What are your opening hours?") in lines


async def test_vendor_swap_hears_with_deepgram_and_speaks_with_elevenlabs(
    world: LoopbackWorld,
) -> None:
    outcome, lines = await simulate(world, "vendor_swap", [Turn("say", "Hello there.")])
    assert outcome.ok, outcome.problems
    assert ("caller", "Hello there.") in lines
    assert world.deepgram.connections and world.openai.transcribed_audio == []
    assert "Hi! You are talking to an assistant on Deepgram and ElevenLabs." in (
        world.elevenlabs.spoken
    )


def test_the_offline_demo_prints_the_whole_conversation() -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "patter.demo"],
        capture_output=True, text=True, timeout=180, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "agent │ This call is with an AI assistant" in out
    assert "caller │ Hi I would like to book a table for two tonight." in out
    assert "agent │ Done: a table for two at eight tonight." in out
    assert "caller │ [DTMF: 1]" in out
    assert "call ended by caller" in out
