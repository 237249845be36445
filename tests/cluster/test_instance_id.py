"""The instance id: from the argument, PATTER_INSTANCE_ID or the host name; checked."""

from __future__ import annotations

import socket

import pytest

from patter.errors import PatterConfigError
from patter.testing.harness import LoopbackWorld


def test_the_instance_id_comes_from_the_argument_then_the_environment(
    world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATTER_INSTANCE_ID", "from-env")
    assert world.patter().instance_id == "from-env"
    assert world.patter(instance_id="patter-2").instance_id == "patter-2"


@pytest.mark.parametrize(
    ("host", "expected"),
    [("web-01", "web-01"), ("pod_7.cluster", "pod_7.cluster"), ("my host", "my-host"),
     ("-", "patter")],
)
def test_the_instance_id_defaults_to_the_host_name_made_fit_for_a_url(
    world: LoopbackWorld, monkeypatch: pytest.MonkeyPatch, host: str, expected: str
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    assert world.patter().instance_id == expected


@pytest.mark.parametrize("bad", ["-p1", "p 1", "p1/../x", "p%2F", "x" * 64])
def test_an_instance_id_unfit_for_a_url_path_is_refused_naming_the_fix(
    world: LoopbackWorld, bad: str
) -> None:
    with pytest.raises(PatterConfigError, match="PATTER_INSTANCE_ID"):
        world.patter(instance_id=bad)
