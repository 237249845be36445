"""Twilio webhooks: only requests Twilio signed for the public URL have any effect."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from _wire import Wire

from patter.testing.harness import CALLER_NUMBER, PATTER_NUMBER, LoopbackWorld

VOICE = "/twilio/voice"


@pytest.mark.parametrize(
    "forgery",
    [
        {"unsigned": True},
        {"signature": "c2lnbmVkIGJ5IHNvbWVvbmUgZWxzZQ=="},
        {"sign_url": "https://attacker.example.com/twilio/voice"},
        {"sign_url": "http://patter.loopback.test/twilio/voice"},
    ],
    ids=["unsigned", "forged", "signed-for-another-host", "signed-for-http-not-https"],
)
async def test_voice_webhook_without_a_valid_signature_is_403_and_changes_nothing(
    world: LoopbackWorld, wire: Wire, forgery: dict[str, object]
) -> None:
    await wire.serve_bot(max_calls=1)
    traffic = wire.vendor_traffic()

    call = await world.call_in(**forgery)

    assert call.webhook_status == 403
    assert world.twilio.webhook_responses[-1].body == ""
    assert call.phone is None and call.twiml is None
    assert wire.vendor_traffic() == traffic

    # Nothing was created: with max_calls=1, a genuine call still gets the line and greets.
    genuine = await world.call_in()
    assert genuine.phone is not None
    assert "<Stream" in (genuine.twiml or "")
    await genuine.phone.wait_for_heard(1.0, timeout=20)


@pytest.mark.parametrize("path", ["/twilio/status", "/twilio/amd", "/twilio/recording"])
async def test_callback_routes_refuse_unsigned_requests_and_accept_signed_ones(
    wire: Wire, path: str
) -> None:
    await wire.serve_bot()
    params = wire.call_params(wire.new_call_sid(), CallStatus="completed",
                              AnsweredBy="human", RecordingStatus="completed")

    unsigned = await wire.post(path, params, signed=False)
    forged = await wire.post(path, params, sign_url=f"https://attacker.example.com{path}")
    signed = await wire.post(path, params)

    assert (unsigned.status_code, unsigned.content) == (403, b"")
    assert (forged.status_code, forged.content) == (403, b"")
    assert signed.status_code == 204


async def test_a_body_over_64_kb_is_413_before_anything_else(wire: Wire) -> None:
    await wire.serve_bot()
    traffic = wire.vendor_traffic()
    params = wire.call_params(wire.new_call_sid(), Padding="x" * (65 * 1024))

    declared = await wire.post(VOICE, params)
    streamed = await wire.post(
        VOICE, headers={"x-twilio-signature": "irrelevant"},
        content=b"Padding=" + b"x" * (65 * 1024),
    )

    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert wire.vendor_traffic() == traffic


async def test_a_body_streamed_without_length_is_capped_too(wire: Wire) -> None:
    await wire.serve_bot()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(80):
            yield b"x" * 1024

    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(f"{wire.local_url}{VOICE}", content=chunks())

    assert response.status_code == 413


@pytest.mark.parametrize(
    "field, value",
    [
        ("CallSid", "CA123"),
        ("CallSid", "../../etc/passwd"),
        ("From", "not a number"),
        ("From", "+1555<script>"),
        ("To", "5550001234"),
    ],
)
async def test_signed_voice_webhook_with_malformed_fields_is_400_and_logged(
    wire: Wire, caplog: pytest.LogCaptureFixture, field: str, value: str
) -> None:
    await wire.serve_bot()
    caplog.set_level(logging.INFO, logger="patter")
    traffic = wire.vendor_traffic()

    response = await wire.post(VOICE, {**wire.call_params(wire.new_call_sid()), field: value})

    assert response.status_code == 400
    assert response.content == b""
    rejected = [r for r in caplog.records if r.getMessage() == "webhook rejected"]
    assert [(r.status, r.path) for r in rejected] == [(400, VOICE)]  # type: ignore[attr-defined]
    assert field in rejected[0].reason  # type: ignore[attr-defined]
    assert wire.vendor_traffic() == traffic


async def test_a_body_that_is_not_utf8_is_400(wire: Wire) -> None:
    await wire.serve_bot()

    response = await wire.post(VOICE, content=b"CallSid=\xff\xfe\xfd",
                               headers={"x-twilio-signature": "whatever"})

    assert response.status_code == 400


async def test_a_signed_webhook_behind_the_tunnel_is_accepted(wire: Wire) -> None:
    """The app listens on http://127.0.0.1:PORT; Twilio signed https://patter.loopback.test."""
    await wire.serve_bot()
    call_sid = wire.new_call_sid()

    parameters = await wire.answer(call_sid)

    assert parameters["token"].startswith("v1.")
    assert (parameters["from"], parameters["to"]) == (CALLER_NUMBER, PATTER_NUMBER)
