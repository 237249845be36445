"""fire() and CallbackQueue: user callbacks are delivered in order and never hold the caller."""

from __future__ import annotations

import asyncio
import logging

import pytest

from patter import _callbacks
from patter._callbacks import CallbackQueue, fire
from patter._events import Event


@pytest.fixture
def short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_callbacks, "CALLBACK_TIMEOUT_S", 0.05)


async def test_a_hanging_async_callback_is_cut_off_and_logged_with_its_name(
        short_limit: None, caplog: pytest.LogCaptureFixture) -> None:
    async def on_call_end(_event: Event) -> None:
        await asyncio.Event().wait()

    await fire(on_call_end, Event(call_sid="CA1"))
    [record] = [r for r in caplog.records if r.message.startswith("callback cut off")]
    assert record.levelno == logging.ERROR
    assert record.callback.endswith("on_call_end")  # type: ignore[attr-defined]


async def test_a_timeout_raised_by_the_callback_itself_is_logged_as_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    async def on_message(_event: Event) -> None:
        raise TimeoutError("CRM timed out")

    await fire(on_message, Event(call_sid="CA1"))
    assert "callback raised; the call goes on" in caplog.messages


async def test_the_queue_delivers_in_order_without_the_poster_waiting(short_limit: None) -> None:
    seen: list[str] = []
    release = asyncio.Event()

    async def slow(event: Event) -> None:
        await release.wait()
        seen.append(event["text"])

    queue = CallbackQueue()
    queue.post(slow, Event(text="first"))
    queue.post(lambda event: seen.append(event["text"]), Event(text="second"))
    assert seen == []  # posting returned at once
    release.set()
    await queue.flush()
    assert seen == ["first", "second"]


async def test_flush_is_bounded_when_a_callback_hangs(
        short_limit: None, caplog: pytest.LogCaptureFixture) -> None:
    async def hangs(_event: Event) -> None:
        await asyncio.Event().wait()

    queue = CallbackQueue()
    for _ in range(5):
        queue.post(hangs, Event(text="x"))
    await queue.flush(timeout_s=0.01)
    assert "callbacks still pending at the end of the call were dropped" in caplog.messages
