"""``redis_url``: checked when ``Patter`` is built and when it serves; its password never shown."""

from __future__ import annotations

import logging

import pytest

from patter import PatterConfigError
from patter.testing.harness import LoopbackWorld, free_port

PASSWORD = "redis-password-never-shown"


@pytest.mark.parametrize(
    "url",
    ["http://redis.internal:6379", f"redis://:{PASSWORD}@", "localhost:6379", "unix://"],
)
def test_a_bad_redis_url_is_a_clear_error_without_its_password(
    world: LoopbackWorld, url: str
) -> None:
    with pytest.raises(PatterConfigError, match="redis_url") as info:
        world.patter(redis_url=url)
    assert PASSWORD not in str(info.value)
    assert "PATTER_REDIS_URL" in str(info.value)


def test_redis_url_is_read_from_patter_redis_url(
    world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATTER_REDIS_URL", "ftp://nowhere")
    with pytest.raises(PatterConfigError, match="redis_url"):
        world.patter()


async def test_serving_without_its_redis_fails_at_start_naming_it_without_the_password(
    world: LoopbackWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0"
    phone = world.patter(redis_url=url)
    with pytest.raises(PatterConfigError, match="cannot reach Redis") as info:
        await world.serve(phone, phone.agent("You are a test bot."))
    assert "***@127.0.0.1" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text
