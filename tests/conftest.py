"""Shared fixtures: a clean environment and a loopback world (fake Twilio and vendors)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from patter._log import bridge_pipecat_logs
from patter._validate import SETTING_ENV
from patter.testing.harness import LoopbackWorld
from patter.testing.pipeline import running_pipeline

VENDOR_ENV = (
    "TWILIO_BASE_URL", "OPENAI_BASE_URL", "DEEPGRAM_BASE_URL", "ELEVENLABS_BASE_URL",
    "PATTER_SERVER_SECRET", "PATTER_INSTANCE_ID", "PATTER_REDIS_URL",
    *(env for names in SETTING_ENV.values() for env in names),
)


def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    for name in VENDOR_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATTER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "patter-cache"))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No vendor setting leaks in from the machine; the speech cache is per test session."""
    _clean(monkeypatch, tmp_path_factory)


@pytest.fixture(scope="module")
def module_clean_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """``clean_env`` for module-scoped fixtures (which are set up before it)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _clean(monkeypatch, tmp_path_factory)
        yield


@pytest.fixture(scope="session", autouse=True)
def pipecat_logs_through_logging() -> None:
    """Pipecat's loguru output goes through stdlib logging, where caplog sees it."""
    bridge_pipecat_logs("DEBUG")
    logging.getLogger("pipecat").setLevel(logging.INFO)


@pytest.fixture
async def world() -> AsyncIterator[LoopbackWorld]:
    """Fake Twilio, OpenAI, Deepgram and ElevenLabs on 127.0.0.1."""
    async with LoopbackWorld() as loopback:
        yield loopback


@pytest.fixture
def pipeline() -> Callable[..., Any]:
    """``pipeline([processors...]) as p``: a running Pipecat pipeline (patter.testing.pipeline)."""
    return running_pipeline
