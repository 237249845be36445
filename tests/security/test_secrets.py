"""Secrets never reach logs or reprs; every log line of a call carries its CallSid."""

from __future__ import annotations

import asyncio
import logging
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

import pytest
from _wire import Wire

from patter._events import Event
from patter._log import CallSidFilter
from patter._security import TOKEN_PATTERN
from patter.testing.harness import LoopbackWorld, wait_for

CALLER_SAYS = "I would like a table for two."
BOT_SAYS = "Certainly, a table for two."


def record_texts(record: logging.LogRecord) -> Iterable[str]:
    """Everything a handler could write out for ``record``."""
    yield record.getMessage()
    yield repr(record.args)
    yield record.exc_text or ""
    yield record.stack_info or ""
    for value in vars(record).values():
        if type(value) is str:  # not isinstance: some extras are weak proxies to dead objects
            yield value


def leaks(caplog: pytest.LogCaptureFixture, secrets: Iterable[str]) -> list[str]:
    """``logger: message`` of each captured record that contains one of ``secrets``."""
    secrets = [s for s in secrets if s]
    found = [
        f"{r.name}: {r.getMessage()[:120]}"
        for r in caplog.records
        if any(s in text for text in record_texts(r) for s in secrets)
    ]
    if any(s in caplog.text for s in secrets):
        found.append("caplog.text")
    return found


def capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Capture DEBUG from every logger (Pipecat's too), stamped like ``configure_logging`` does."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="pipecat")
    caplog.handler.addFilter(CallSidFilter())


async def test_a_whole_call_logs_no_secret_and_every_call_line_carries_the_call_sid(
    world: LoopbackWorld, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    world.deepgram.transcripts.append(CALLER_SAYS)
    world.openai.reply_with(BOT_SAYS)
    phone = world.patter(stt="deepgram", tts="elevenlabs", server_secret=wire.server_secret)
    ended: list[Event] = []
    await world.serve(phone, phone.agent("You are a test bot.", first_message="Hello."),
                      on_call_end=ended.append)
    # An attacker replays a token seen on the wire: refused, and logged without the token.
    stolen = await wire.answer(wire.new_call_sid())
    claimed = wire.new_call_sid()
    async with wire.stream(claimed, stolen) as attacker:
        await attacker.wait_closed(timeout=15)

    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    call.phone.say_text(CALLER_SAYS)
    await wait_for(lambda: BOT_SAYS in " ".join(world.elevenlabs.spoken), timeout=20)
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=10)

    token = wire.stream_parameters(call.twiml or "")["token"]
    assert leaks(caplog, [*world.secrets, wire.server_secret, token, stolen["token"]]) == []
    assert any("xi-api-key" in r.getMessage() for r in caplog.records)  # the scan saw headers

    def stamped(predicate: str) -> list[str]:
        return [getattr(r, "call_sid", None) for r in caplog.records if predicate in r.getMessage()]

    assert set(stamped("Generating TTS [Hello.]")) == {call.sid}  # a Pipecat task of the call
    assert set(stamped("/v1/chat/completions")) == {call.sid}  # httpx, inside Pipecat's LLM
    assert set(stamped("call ended")) == {call.sid}  # Patter's session
    call_loggers = ("patter._session", "patter.processors.", "patter.transports.")
    assert {r.call_sid for r in caplog.records  # type: ignore[attr-defined]
            if r.name.startswith(call_loggers)} == {call.sid}
    assert set(stamped("media stream refused")) == {claimed}


async def test_repr_of_patter_and_its_settings_hold_no_secret(world: LoopbackWorld) -> None:
    phone = world.patter(server_secret="a-server-secret-0123456789")

    texts = [repr(phone), str(phone), repr(phone.keys), f"{phone!r} {phone.keys}"]

    for secret in [*world.secrets, "a-server-secret-0123456789"]:
        assert not any(secret in text for text in texts), secret


async def test_a_server_secret_from_the_environment_is_scrubbed_from_logs(
    world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATTER_SERVER_SECRET", "env-server-secret-0123456789")
    world.patter()

    logging.getLogger("some.library").warning("configured with %s", "env-server-secret-0123456789")

    assert leaks(caplog, ["env-server-secret-0123456789"]) == []


async def test_a_wrong_twilio_token_fails_serve_without_showing_the_token(
    world: LoopbackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    capture_everything(caplog)
    wrong = "wrong-twilio-token-0123456789"
    phone = world.patter(twilio_token=wrong)

    with pytest.raises(Exception) as raised:  # its type is not the point here: its text is
        await world.serve(phone, phone.agent("You are a test bot."))

    shown = "".join(traceback.format_exception(raised.value))
    assert "401" in shown
    assert not any(secret in shown for secret in [wrong, *world.secrets])
    assert leaks(caplog, [wrong, *world.secrets]) == []


DEMO_WITH_SECRETS_REVEALED = """
import asyncio, sys
from pathlib import Path
import patter.testing.demo as demo
from patter.testing.harness import LoopbackWorld
worlds = []
class RecordedWorld(LoopbackWorld):
    def __init__(self):
        super().__init__()
        worlds.append(self)
demo.LoopbackWorld = RecordedWorld
status = asyncio.run(demo.run_demo(Path(sys.argv[1])))
sys.stdout.flush()
print("\\nSECRETS " + " ".join(worlds[0].secrets), file=sys.stderr)
sys.exit(status)
"""


async def test_the_demo_prints_no_secret(tmp_path: Path) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DEMO_WITH_SECRETS_REVEALED, str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(demo.communicate(), timeout=180)
    output, _, revealed = (stdout + stderr).decode().rpartition("\nSECRETS ")

    assert demo.returncode == 0, output
    assert "call ended by" in output
    secrets = revealed.split()
    assert len(secrets) == 4
    assert not any(secret in output for secret in secrets)
    assert not TOKEN_PATTERN.search(output)
