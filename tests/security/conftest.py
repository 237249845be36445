"""Fixtures of the security tests: direct access to the served app (see ``_wire.Wire``)."""

from __future__ import annotations

import pytest
from _wire import Wire

from patter.testing.harness import LoopbackWorld


@pytest.fixture
def wire(world: LoopbackWorld) -> Wire:
    """Direct access to the app served in ``world``."""
    return Wire(world)
