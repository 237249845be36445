"""The public names of each package are exactly the ones its __all__ lists."""

from __future__ import annotations
import __future__

import importlib
import pkgutil
import types

import pytest

import patter

PUBLIC_MODULES = {"audio", "errors", "processors", "testing", "transports"}
"""The modules of ``patter`` whose path is API; every other one has a private name."""


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
    unlisted = {
        name for name, value in vars(package).items()
        if not name.startswith("_") and name not in exported
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }
    assert not unlisted, f"{module} has public names missing from __all__: {sorted(unlisted)}"


def test_every_module_of_patter_outside_the_public_ones_has_a_private_name() -> None:
    # patter/'s own folder (processors/ and transports/ are mapped in from beside it)
    names = {m.name for m in pkgutil.iter_modules(patter.__path__[:1])}
    assert {n for n in names if not n.startswith("_")} <= PUBLIC_MODULES


def test_patter_imports_as_the_spec_writes() -> None:
    from patter import Patter

    assert Patter.__module__ == "patter._client"
