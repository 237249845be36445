"""The fake Twilio and its small voice application, shared by the ``FakeTwilio`` tests."""

from collections.abc import AsyncIterator

import pytest
from _fake_twilio_app import World, open_world


@pytest.fixture
async def twilio_world() -> AsyncIterator[World]:
    """A fake Twilio, the voice application its number calls, and an SDK client."""
    async with open_world() as world:
        yield world
