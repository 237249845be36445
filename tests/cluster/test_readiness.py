"""/healthz and /readyz, and what a draining server answers to a new call (in-process)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from twilio.request_validator import RequestValidator

from patter._server import BALANCER_HEADER, VOICE_PATH, PatterServer
from patter._twiml import busy_twiml
from patter.testing.harness import CALLER_NUMBER, PATTER_NUMBER, LoopbackWorld


@pytest.fixture
async def server(world: LoopbackWorld) -> PatterServer:
    return world.in_process_server(max_calls=1)


@pytest.fixture
async def client(server: PatterServer) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=server.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


async def ring(world: LoopbackWorld, client: httpx.AsyncClient, **headers: str) -> httpx.Response:
    """A new inbound call's signed voice webhook."""
    params = {
        "AccountSid": world.twilio.account_sid, "CallSid": "CA" + secrets.token_hex(16),
        "From": CALLER_NUMBER, "To": PATTER_NUMBER, "Direction": "inbound",
    }
    signature = RequestValidator(world.twilio.auth_token).compute_signature(
        f"{world.public_url}{VOICE_PATH}", params
    )
    return await client.post(
        VOICE_PATH, data=params, headers={"x-twilio-signature": signature, **headers}
    )


async def test_healthz_and_readyz_answer_200_without_credentials(
    client: httpx.AsyncClient,
) -> None:
    health, ready = await client.get("/healthz"), await client.get("/readyz")
    assert (health.status_code, health.text) == (200, "ok\n")
    assert (ready.status_code, ready.text) == (200, "ready\n")


async def test_readyz_answers_503_once_max_calls_are_answered(
    world: LoopbackWorld, client: httpx.AsyncClient
) -> None:
    answered = await ring(world, client)
    assert "<Stream" in answered.text

    ready = await client.get("/readyz")
    assert (ready.status_code, ready.text) == (503, "full\n")
    assert (await client.get("/healthz")).status_code == 200


async def test_a_draining_server_is_not_ready_and_answers_a_new_call_busy(
    world: LoopbackWorld, server: PatterServer, client: httpx.AsyncClient
) -> None:
    server.start_draining()

    ready = await client.get("/readyz")
    assert (ready.status_code, ready.text) == (503, "draining\n")
    assert (await client.get("/healthz")).status_code == 200
    refused = await ring(world, client)
    assert refused.status_code == 200
    assert refused.text == busy_twiml()


async def test_a_draining_server_answers_503_to_a_balancer_that_retries_elsewhere(
    world: LoopbackWorld, server: PatterServer, client: httpx.AsyncClient
) -> None:
    server.start_draining()

    refused = await ring(world, client, **{BALANCER_HEADER: "retries"})
    assert refused.status_code == 503


async def test_the_stream_url_names_the_answering_instance(
    world: LoopbackWorld, server: PatterServer, client: httpx.AsyncClient
) -> None:
    answered = await ring(world, client)
    media = f"wss://patter.loopback.test/twilio/media/{server.config.instance_id}"
    assert f'<Stream url="{media}">' in answered.text
