"""The ``patter`` command: help everywhere, exit codes scripts can rely on, clear errors for a
bad target, ``simulate`` through the fakes, and ``doctor`` against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import wave
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from patter._cli import app
from patter._simulate import load_in_world
from patter._vendors import PIPER_VOICE
from patter.testing.fake_twilio import OutboundScript
from patter.testing.harness import (
    CALLEE_NUMBER,
    OPENAI_KEY,
    PATTER_NUMBER,
    LoopbackWorld,
    free_port,
)

ROOT = Path(__file__).resolve().parents[1]
IVR = f"{ROOT}/examples/ivr_menu.py"


def patter(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``patter ARGS`` in-process."""
    return CliRunner().invoke(app, list(args), env=env)


@pytest.mark.parametrize("command", [[], ["serve"], ["call"], ["simulate"], ["doctor"], ["demo"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = patter(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "missing.py:agent"], "missing.py not found"),
        (["serve", "no_such_module:agent"], "no module named 'no_such_module'"),
        (["serve", "not a target"], "write FILE.py:NAME or MODULE:NAME"),
        (["serve", f"{ROOT}/examples/appointment_reminder.py:agent"],
         "reads the environment variable 'TWILIO_SID', which is not set"),
        (["serve", f"{IVR}:agent"],
         "twilio_sid is missing: pass Patter(twilio_sid=...) or set TWILIO_ACCOUNT_SID"),
        (["simulate", f"{IVR}:agnt"], "has no attribute 'agnt'; it defines agent"),
        (["simulate", f"{IVR}:phone"], "is a Patter, not an agent"),
        (["call", "555-0001", f"{IVR}:agent"], "call(to=...) must be an E.164 phone number"),
        (["simulate", f"{IVR}:agent", "--fakes", "--real"], "choose one of --fakes"),
        (["simulate", f"{IVR}:agent", "--wav", "nothing.wav"], "give a 16-bit mono WAV"),
        (["simulate", f"{IVR}:agent", "--dtmf", "1x"], "keys are 0123456789*# only"),
    ],
)
def test_a_usage_or_config_error_exits_2_naming_the_fix(args: list[str], message: str) -> None:
    result = patter(*args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_simulate_plays_the_turns_in_the_order_given_and_saves_the_call(tmp_path: Path) -> None:
    saved = tmp_path / "call.wav"
    result = patter(
        "simulate", f"{ROOT}/examples/receptionist.py:agent",
        "--dtmf", "1", "--say", "Do you open on Sundays?", "--save-wav", str(saved),
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines.index("caller: [DTMF: 1]") < lines.index("caller: Do you open on Sundays?")
    assert "agent: You said: Do you open on Sundays?" in lines
    assert "agent: Acme Corp, front desk. How can I help you today?" in lines
    assert any(line.startswith("call: call ended by caller") for line in lines)
    with wave.open(str(saved)) as wav:
        assert wav.getframerate() == 8000 and wav.getnframes() > 8000


def test_simulate_offline_hears_the_caller_with_moonshine_and_speaks_with_piper() -> None:
    result = patter(
        "simulate", f"{ROOT}/examples/offline_bot.py:agent", "--offline",
        "--say", "What time do you open?", "--dtmf", "#",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # Recognised from espeak-ng's speech, not scripted ("open" is sometimes misheard: the
    # example's rule listens for "time" too).
    heard = [line for line in lines
             if line.startswith("caller: ") and ("open" in line or "time" in line)]
    assert heard, result.output
    assert "agent: We are open from nine to five, Monday to Friday." in lines
    assert "agent: Goodbye!" in lines


def test_simulate_offline_swaps_in_the_offline_engines() -> None:
    async def loaded() -> tuple[object, object, str]:
        async with LoopbackWorld() as world:
            agent = load_in_world(world, f"{IVR}:agent", "offline").agent
            return agent.stt, agent.tts, agent.voice

    assert asyncio.run(loaded()) == ("moonshine", "piper", PIPER_VOICE)


def test_a_module_target_is_found_in_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd())])
    result = patter("simulate", "ivr_menu:agnt")
    assert result.exit_code == 2, result.output
    assert "ivr_menu has no attribute 'agnt'; it defines agent" in result.output
    sys.modules.pop("ivr_menu", None)


async def doctor(env: dict[str, str]) -> Result:
    """``patter doctor`` under ``env``, in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(patter, "doctor", env=env)


async def test_doctor_finds_a_good_config_good(world: LoopbackWorld) -> None:
    env = world.environment()
    env["WEBHOOK_URL"] = f"http://127.0.0.1:{world.port}"
    phone = world.patter(webhook_url=env["WEBHOOK_URL"])
    await world.serve(phone, phone.agent("You are a test bot."))
    result = await doctor(env)
    assert result.exit_code == 0, result.output
    for line in ("✓ twilio: account reached; +*******1234 is on it", "✓ openai: key accepted",
                 "✓ deepgram: key accepted", "✓ elevenlabs: key accepted",
                 "✓ webhook_url: Patter's voice webhook answers", "all good"):
        assert line in result.output
    assert not any(secret in result.output for secret in world.secrets)


async def test_doctor_names_each_problem_and_prints_no_secret(world: LoopbackWorld) -> None:
    env = world.environment()
    env.update(
        PHONE_NUMBER="+15550009999",
        OPENAI_API_KEY="sk-wrong-key-0123456789",
        ELEVENLABS_API_KEY="xi-wrong-key-0123456789",
        WEBHOOK_URL=f"http://127.0.0.1:{free_port()}",
    )
    result = await doctor(env)
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "✗ twilio: account reached, but phone_number +*******9999 is not on it" in output
    assert "✗ openai: key refused (HTTP 401): check OPENAI_API_KEY (or OPENAI_KEY)" in output
    assert "✗ elevenlabs: key refused (HTTP 401)" in output
    assert "✓ deepgram: key accepted" in output
    assert "✗ webhook_url: no answer (ConnectError): start `patter serve" in output
    assert "4 problem(s) found" in output
    secrets = [*world.secrets, env["OPENAI_API_KEY"], env["ELEVENLABS_API_KEY"]]
    assert not any(secret in result.output for secret in secrets)


def test_doctor_checks_every_setting_without_the_network() -> None:
    result = patter("doctor", env={"TWILIO_SID": "12345", "PHONE_NUMBER": "555-0001",
                                   "WEBHOOK_URL": "https://example.com/voice.xml"})
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "✗ twilio_sid: twilio_sid must be your Twilio Account SID" in output
    assert "✗ twilio_token: twilio_token is missing: pass Patter(twilio_token=...) or set " \
        "TWILIO_AUTH_TOKEN (or TWILIO_TOKEN)" in output
    assert "✗ phone_number: phone_number must be an E.164 phone number" in output
    assert "✗ webhook_url: webhook_url must be the public base URL" in output
    assert "✗ openai_key: openai_key is missing" in output
    assert "· deepgram_key: not set (DEEPGRAM_API_KEY)" in output


async def test_simulate_real_keeps_the_vendors_of_the_environment(
    world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0123")
    target = load_in_world(world, f"{IVR}:agent", "real")
    assert target.phone.keys.openai_key == "sk-from-the-environment-0123"
    assert target.phone.keys.openai_base_url is None  # the vendor's own endpoint
    assert target.phone.twilio_base_url == world.twilio.base_url  # Twilio stays simulated
    assert target.phone.twilio_sid == world.twilio.account_sid


@contextlib.asynccontextmanager
async def patter_process(*args: str, env: dict[str, str]) -> AsyncIterator[Process]:
    """``patter ARGS`` as its own process (stderr merged into stdout), killed if still
    running at the end."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "patter"), *args, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_simulate_real_talks_to_the_vendors_the_environment_names(
    world: LoopbackWorld,
) -> None:
    """``--real`` end to end in its own process: its Twilio is simulated, its OpenAI is the
    one ``OPENAI_BASE_URL`` names (here this test's fake, as a proxy would be in real use)."""
    world.openai.transcripts.append("Do you open on Sundays?")
    env = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": world.openai.base_url}
    async with patter_process(
        "simulate", f"{ROOT}/examples/receptionist.py:agent", "--real",
        "--say", "Do you open on Sundays?", env=env,
    ) as simulate:
        output, _ = await asyncio.wait_for(simulate.communicate(), 120)
    lines = output.decode().splitlines()
    assert simulate.returncode == 0, lines
    assert "caller: Do you open on Sundays?" in lines
    assert "agent: You said: Do you open on Sundays?" in lines
    assert len(world.openai.transcribed_audio) == 1  # the caller's espeak-ng line, as audio
    assert world.openai.chat_requests and OPENAI_KEY not in output.decode()


async def test_serve_prints_each_call_as_it_happens_and_ctrl_c_exits_0(
    world: LoopbackWorld,
) -> None:
    env = world.environment()
    lines: list[str] = []
    async with patter_process(
        "serve", f"{IVR}:agent", "--host", "127.0.0.1", "--port", str(world.port), env=env
    ) as server:

        async def read_until(prefix: str) -> None:
            assert server.stdout is not None
            while not any(line.startswith(prefix) for line in lines):
                line = await asyncio.wait_for(server.stdout.readline(), 60)
                assert line, f"patter serve exited early: {lines}"
                lines.append(line.decode().rstrip())

        await read_until("call: serving")
        number = world.twilio.numbers[PATTER_NUMBER]
        await world.twilio.wait_until(lambda: bool(number.voice_url), timeout=30)
        call = await world.call_in()
        assert call.phone is not None, call.errors
        await read_until("agent: Thank you for calling Acme.")
        await call.phone.hang_up()
        await read_until("call: call ended by caller")
        server.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    assert any(line.startswith("call: inbound call CA") for line in lines)
    assert "agent: This call is with an AI assistant, and it may be recorded." in lines
    assert not any(secret in "\n".join(lines) for secret in world.secrets)


async def test_call_leaves_the_voicemail_with_a_machine_and_prints_the_outcome(
    world: LoopbackWorld,
) -> None:
    # Twilio's "completed" callback comes after the CLI has its answer: the exit code
    # follows the call's end event, not a status callback still on its way.
    world.twilio.next_outbound = OutboundScript(
        answered_by="machine_end_beep", completed_callback_delay_s=3.0
    )
    env = world.environment()
    async with patter_process(
        "call", CALLEE_NUMBER, f"{ROOT}/examples/outbound_voicemail.py:agent",
        "--machine-detection", "--voicemail", "Please call Acme back.",
        "--port", str(world.port), env=env,
    ) as caller:
        out, _ = await asyncio.wait_for(caller.communicate(), 90)
    lines = out.decode().splitlines()
    assert caller.returncode == 0, lines[-20:]
    assert "agent: Please call Acme back." in lines
    assert lines[-1].startswith("call: status completed; call ended by agent")
    assert lines[-1].endswith("answered by machine_end_beep; voicemail left")
    call = await world.twilio.wait_for_call()
    assert call.to == CALLEE_NUMBER and call.params["MachineDetection"]
