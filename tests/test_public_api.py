"""The public names of each package are exactly the ones its __all__ lists."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(
    "module", ["patter", "patter.audio", "patter.processors", "patter.transports", "patter.testing"]
)
def test_all_lists_exactly_the_public_names_and_each_imports(module: str) -> None:
    package = importlib.import_module(module)
    exported = list(package.__all__)
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(package, name) is not None
        assert getattr(package, name).__doc__, f"{module}.{name} has no docstring"


def test_patter_imports_as_the_spec_writes() -> None:
    from patter import Patter

    assert Patter.__module__ == "patter._client"
