"""deploy/: the HAProxy configuration is valid as shipped and as rewritten for local
instances, and compose.yaml's instances are the ones HAProxy names."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from _haproxy_world import HAPROXY_CONFIG, ROOT

from patter.testing.cluster import haproxy_binary, render_haproxy_config

SERVER = re.compile(r"^\s*server\s+(\S+)\s+(\S+)", re.MULTILINE)
HAPROXY = haproxy_binary()
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy missing: make cluster-deps")


def haproxy_check(config: Path) -> subprocess.CompletedProcess[str]:
    assert HAPROXY is not None
    return subprocess.run([HAPROXY, "-c", "-f", str(config)], capture_output=True,
                          text=True, check=False)


@needs_haproxy
def test_the_shipped_haproxy_config_is_valid() -> None:
    checked = haproxy_check(HAPROXY_CONFIG)
    assert checked.returncode == 0, checked.stderr


@needs_haproxy
def test_the_config_rewritten_for_local_instances_lists_them_in_every_backend(
    tmp_path: Path,
) -> None:
    rendered = render_haproxy_config(HAPROXY_CONFIG.read_text(), [("p1", 9001), ("p2", 9002)])
    (tmp_path / "haproxy.cfg").write_text(rendered)

    assert SERVER.findall(rendered) == [
        ("p1", "127.0.0.1:9001"), ("p2", "127.0.0.1:9002"),
    ] * 2
    checked = haproxy_check(tmp_path / "haproxy.cfg")
    assert checked.returncode == 0, checked.stderr


def test_compose_runs_one_instance_per_haproxy_server_named_as_its_instance_id() -> None:
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    servers = set(SERVER.findall(HAPROXY_CONFIG.read_text()))
    assert servers
    for name, address in servers:
        assert f"PATTER_INSTANCE_ID: {name}\n" in compose
        host, port = address.split(":")
        assert f"\n  {host}:\n" in compose and f'"--port", "{port}"' in compose
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg" in compose
