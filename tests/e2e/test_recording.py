"""Call recording end to end: started over REST at connect, reported at call end and when final."""

from __future__ import annotations

import asyncio
import logging

import pytest

from patter._events import Event
from patter.testing.harness import LoopbackWorld, wait_for

GREETING = "Hello, thanks for calling."


def recording_requests(world: LoopbackWorld) -> list[tuple[str, dict[str, str], list[str]]]:
    """Recordings API requests: (path after the account, params, status callback events)."""
    return [
        (
            r.path.split(world.twilio.account_sid, 1)[1],
            r.params,
            r.param_lists.get("RecordingStatusCallbackEvent", []),
        )
        for r in world.twilio.requests
        if r.path.endswith("/Recordings.json")
    ]


async def serve_recording(world: LoopbackWorld) -> tuple[list[Event], list[Event]]:
    """Serve a greeting bot with ``recording=True``; returns the lists that collect its
    ``on_call_end`` and ``on_recording`` events."""
    phone = world.patter()
    ended: list[Event] = []
    recordings: list[Event] = []
    await world.serve(
        phone, phone.agent("You are a test bot.", first_message=GREETING),
        recording=True, on_call_end=ended.append, on_recording=recordings.append,
    )
    return ended, recordings


async def test_serve_recording_records_each_call_and_reports_the_recording(
    world: LoopbackWorld,
) -> None:
    ended, recordings = await serve_recording(world)
    call = await world.call_in()
    assert call.phone is not None
    await wait_for(lambda: bool(call.recordings), timeout=20)
    [(path, params, events)] = recording_requests(world)
    assert path == f"/Calls/{call.sid}/Recordings.json"
    assert params["RecordingChannels"] == "dual"
    assert params["RecordingStatusCallback"] == f"{world.public_url}/twilio/recording"
    assert events == ["completed", "absent"]
    assert call.recordings[0].channels == 2

    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended) and bool(recordings), timeout=20)
    await asyncio.sleep(0.3)  # a second on_recording would arrive here

    sid = call.recordings[0].sid
    assert ended[0]["recording"]["sid"] == sid
    assert ended[0]["recording"]["status"] in ("in-progress", "completed")
    assert len(recordings) == 1
    final = recordings[0]
    assert final["call_sid"] == call.sid and final["direction"] == "inbound"
    assert final["recording"]["sid"] == sid
    assert final["recording"]["status"] == "completed"
    assert isinstance(final["recording"]["duration"], int)
    assert final["recording"]["url"].endswith(f"/Recordings/{sid}")
    assert any(entry["role"] == "assistant" for entry in final["history"])
    assert call.recordings[0].callbacks[0].status == 204  # signed and accepted


async def test_call_recording_records_the_outbound_call(world: LoopbackWorld) -> None:
    phone = world.patter()
    recordings: list[Event] = []
    handle = await world.call_out(
        phone, phone.agent("You are a test bot.", first_message=GREETING),
        recording=True, on_recording=recordings.append,
    )
    call = await world.twilio.wait_for_call()
    callee = await call.wait_stream(timeout=20)
    await wait_for(lambda: bool(call.recordings), timeout=20)
    assert [path for path, _, _ in recording_requests(world)] == [
        f"/Calls/{handle.call_sid}/Recordings.json"
    ]
    assert "Record" not in call.params
    await callee.wait_until_quiet(quiet_s=0.6, timeout=20)
    await callee.hang_up()
    end = await handle.wait(timeout_s=20)
    assert end["recording"]["sid"] == call.recordings[0].sid
    await wait_for(lambda: bool(recordings), timeout=20)
    assert recordings[0]["recording"]["status"] == "completed"
    assert recordings[0]["direction"] == "outbound"


async def test_a_refused_recording_is_logged_and_reported_and_the_call_goes_on(
    world: LoopbackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    world.twilio.fail_recordings = True
    ended, recordings = await serve_recording(world)
    with caplog.at_level(logging.WARNING, logger="patter"):
        call = await world.call_in()
        assert call.phone is not None
        await wait_for(lambda: bool(recording_requests(world)), timeout=20)
        await call.phone.wait_for_heard(3.5, timeout=20)  # disclosure and greeting still play
        await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
        assert GREETING in world.openai.spoken
        assert call.status == "in-progress"
        await call.phone.hang_up()
        await wait_for(lambda: bool(ended), timeout=20)

    recording = ended[0]["recording"]
    assert recording["status"] == "failed"
    assert "21220" in recording["error"]
    assert ended[0]["ended_by"] == "caller"
    assert any(r.getMessage() == "recording could not start" for r in caplog.records)
    assert recordings == []


async def test_without_recording_nothing_is_recorded(world: LoopbackWorld) -> None:
    phone = world.patter()
    ended: list[Event] = []
    await world.serve(phone, phone.agent("You are a test bot."), on_call_end=ended.append)
    call = await world.call_in()
    assert call.phone is not None
    await call.phone.wait_until_quiet(quiet_s=0.6, timeout=20)
    await call.phone.hang_up()
    await wait_for(lambda: bool(ended), timeout=20)
    assert recording_requests(world) == [] and call.recordings == []
    assert "recording" not in ended[0]
