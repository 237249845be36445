"""Each bundled example runs as ``patter simulate`` runs it: imported under its own loopback
world's settings and called through the simulated phone, all at once; the fake LLM is
scripted where the example's behaviour depends on what the model decides."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest_asyncio

from patter._simulate import Outbound, Outcome, Turn, load_in_world, run_call, script_fake_stt
from patter.audio import level_dbfs
from patter.testing._demo_offline import RULES
from patter.testing.fake_openai import message_text
from patter.testing.harness import PATTER_NUMBER, LoopbackWorld

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
BILLING, SUPPORT = "+15550001111", "+15550002222"
FRONT_DESK = "+15550001111"
HOURS_REPLY = RULES[0].reply


@dataclass
class Scene:
    """What the caller does in one example's call, and what the fake LLM answers."""

    turns: list[Turn]
    script: Callable[[LoopbackWorld], object] = lambda world: None
    machine_answers: bool = False
    """The agent calls out and a machine answers (with the example's VOICEMAIL)."""


SCENES = {
    "appointment_reminder": Scene(
        [Turn("dtmf", "1")],
        lambda world: world.openai.reply_with("Your appointment is confirmed. Goodbye!"),
    ),
    "ivr_menu": Scene(
        [Turn("dtmf", "2")],
        lambda world: world.openai.call_tool(
            "transfer_call", {"phone_number": SUPPORT}, say="Connecting you."
        ),
    ),
    "receptionist": Scene(
        [Turn("say", "I have a question about my bill.")],
        lambda world: world.openai.call_tool(
            "transfer_call", {"phone_number": BILLING, "reason": "billing"}
        ),
    ),
    "outbound_voicemail": Scene([], machine_answers=True),
    "custom_pipeline": Scene([Turn("say", "What are your opening hours?")]),
    "vendor_swap": Scene([Turn("say", "Hello there.")]),
    "offline_bot": Scene([Turn("dtmf", "0")]),
}


@dataclass
class Run:
    """One example's simulated call: its outcome, the lines printed, its (closed) world."""

    world: LoopbackWorld | None
    outcome: Outcome | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)
    voicemail: str = ""
    error: BaseException | None = None


async def simulate(example: str, scene: Scene) -> Run:
    """Run ``examples/<example>.py:agent`` as ``patter simulate`` does."""
    async with LoopbackWorld() as world:
        run = Run(world)
        target = load_in_world(world, f"{EXAMPLES / example}.py:agent", "fakes")
        scene.script(world)
        script_fake_stt(world, scene.turns)
        outbound = None
        if scene.machine_answers:
            run.voicemail = target.module.VOICEMAIL
            outbound = Outbound(True, run.voicemail, answered_by="machine_end_beep")
        run.outcome = await run_call(
            world, target, scene.turns, outbound=outbound,
            show=lambda who, text: run.lines.append((who, text)),
        )
    return run


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runs(module_clean_env: None) -> tuple[dict[str, Run], str]:
    """Every example's call, run concurrently, and everything they printed."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        results = await asyncio.gather(
            *(simulate(name, scene) for name, scene in SCENES.items()), return_exceptions=True
        )
    done: dict[str, Run] = {}
    for name, result in zip(SCENES, results, strict=True):
        if isinstance(result, BaseException):
            done[name] = Run(None, error=result)
        else:
            done[name] = result
    return done, printed.getvalue()


def ran(runs: tuple[dict[str, Run], str], example: str) -> tuple[Run, Outcome, LoopbackWorld]:
    """The example's run (which must have ended cleanly), its outcome and its world."""
    run = runs[0][example]
    if run.error is not None:
        raise run.error
    assert run.outcome is not None and run.outcome.ok, run.outcome and run.outcome.problems
    assert run.world is not None
    return run, run.outcome, run.world


def test_every_example_says_what_it_shows_and_how_to_run_it() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in sorted(EXAMPLES.glob("*.py")):
        source = path.read_text()
        header = source.split('"""')[1]
        assert f"patter simulate examples/{path.name}:agent" in header, path.name
        assert 'if __name__ == "__main__":' in source, path.name
        assert f"examples/{path.name}" in readme, f"README does not list {path.name}"
    assert {path.stem for path in EXAMPLES.glob("*.py")} == set(SCENES)


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


def test_appointment_reminder_takes_a_keypress_to_confirm(runs: tuple[dict[str, Run], str]) -> None:
    run, _, world = ran(runs, "appointment_reminder")
    assert ("agent", "Hello! This is Dr. Smith's office calling with an appointment "
            "reminder.") in run.lines
    assert ("caller", "[DTMF: 1]") in run.lines
    assert ("agent", "Your appointment is confirmed. Goodbye!") in run.lines
    system = message_text(world.openai.chat_requests[0]["messages"][0])
    assert "appointment reminder bot for Dr. Smith's office" in system


def test_ivr_menu_transfers_on_a_keypress_through_a_twilio_redirect(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, outcome, world = ran(runs, "ivr_menu")
    assert ("caller", "[DTMF: 2]") in run.lines
    call = outcome.call
    assert call is not None
    assert [(d.number, d.caller_id) for d in call.dials] == [(SUPPORT, PATTER_NUMBER)]
    assert any("<Dial" in update.get("Twiml", "") for update in call.updates)
    assert outcome.end is not None and outcome.end["transfer_to"] == SUPPORT


def test_receptionist_transfers_a_billing_question_to_billing(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, outcome, world = ran(runs, "receptionist")
    assert ("caller", "I have a question about my bill.") in run.lines
    assert outcome.call is not None and [d.number for d in outcome.call.dials] == [BILLING]
    tools = [t["function"]["name"] for t in world.openai.chat_requests[0]["tools"]]
    assert "transfer_call" in tools


def test_outbound_voicemail_leaves_the_voicemail_with_a_machine(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, outcome, world = ran(runs, "outbound_voicemail")
    assert outcome.end is not None
    assert outcome.end["voicemail_left"] is True
    assert outcome.end["answered_by"] == "machine_end_beep"
    assert run.voicemail in world.openai.spoken
    assert world.openai.chat_requests == []  # a machine never reaches the LLM


def test_custom_pipeline_runs_its_own_processor_in_the_chain(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, _, world = ran(runs, "custom_pipeline")
    printed = runs[1]
    assert "stt → transcript_logger → user_context" in printed
    assert "[custom stage] caller said: What are your opening hours?" in printed
    assert ("agent", "You said: What are your opening hours?") in run.lines


def test_vendor_swap_hears_with_deepgram_and_speaks_with_elevenlabs(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, _, world = ran(runs, "vendor_swap")
    assert ("caller", "Hello there.") in run.lines
    assert world.deepgram.connections and world.openai.transcribed_audio == []
    assert "Hi! You are talking to an assistant on Deepgram and ElevenLabs." in (
        world.elevenlabs.spoken
    )


def test_offline_bot_answers_with_its_rules_and_transfers_on_0(
    runs: tuple[dict[str, Run], str],
) -> None:
    run, outcome, world = ran(runs, "offline_bot")
    assert ("agent", "Putting you through to the front desk.") in run.lines
    assert outcome.call is not None and [d.number for d in outcome.call.dials] == [FRONT_DESK]
    assert not world.openai.chat_requests and not world.openai.spoken


def test_the_offline_demo_is_a_real_call_written_to_a_stereo_wav(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "patter.testing.demo", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd="/",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "speech engines are missing" not in out  # the dev install has them
    assert "agent │ This call is with an AI assistant" in out
    heard = [line for line in out.splitlines() if "caller │" in line]
    # Moonshine heard the first line ("open" is sometimes heard as "know, Ben": the rule
    # listens for "time" too)…
    assert any("open" in line or "time" in line for line in heard), out
    assert f"agent │ {HOURS_REPLY}" in out  # …and the rule agent answered it
    assert "caller │ [DTMF: 1]" in out
    assert "call ended by agent" in out and "1 barge-in cut" in out
    with wave.open(str(tmp_path / "demo-call.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        both = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).reshape(-1, 2)
    assert level_dbfs(both[:, 0].copy()) > -45 and level_dbfs(both[:, 1].copy()) > -45
    assert (tmp_path / "demo-call.png").read_bytes().startswith(b"\x89PNG")


def test_the_demo_without_the_offline_extra_says_so_and_calls_on_the_fakes(
    tmp_path: Path,
) -> None:
    # A ``sitecustomize`` that marks Moonshine as absent, as on an install without
    # ``patter[offline]``: importing it fails and ``find_spec`` finds nothing.
    absent = 'import sys\nsys.modules["moonshine_voice"] = None\n'
    (tmp_path / "sitecustomize.py").write_text(absent)
    result = subprocess.run(
        [sys.executable, "-P", "-m", "patter.testing.demo", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=180, cwd="/",
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "speech engines are missing" in out and "pip install 'patter[offline]'" in out
    assert "agent │ This call is with an AI assistant" in out
    assert "caller │" in out and "call ended" in out
    assert not (tmp_path / "demo-call.wav").exists()
