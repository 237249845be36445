"""Several Patter instances behind a real HAProxy on loopback (and ``redis-server`` if asked).

For development (``deploy/local-cluster``), the cluster tests and ``benchmarks/cluster.py``::

    def instance(instance_id: str, port: int) -> list[str]:
        return ["patter", "serve", "app.py:agent", "--host", "127.0.0.1", "--port", str(port)]

    async with LocalCluster(instance, instances=3, haproxy_config=Path("deploy/haproxy.cfg")) as c:
        print(c.url)            # the balancer: point WEBHOOK_URL's tunnel here
        c.instances[0].stop()   # SIGTERM: that instance drains

Each instance runs ``command(instance_id, port)`` with ``PATTER_INSTANCE_ID`` set to its id
(``p1``, ``p2``…) and one ``PATTER_SERVER_SECRET`` shared by all. HAProxy runs
``haproxy_config`` with its server lists rewritten for these instances (one line per
instance, in every list) and its front bound to ``127.0.0.1:port``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from patter.testing._lifecycle import AsyncStartClose
from patter.testing.harness import free_port

InstanceCommand = Callable[[str, int], Sequence[str]]
"""``command(instance_id, port)``: the command line serving one instance on ``port``."""

START_TIMEOUT_S = 120.0
SERVER_LINE = re.compile(r"^(?P<indent>\s*)server\s+\S+\s+\S+(?P<options>.*)$")


def haproxy_binary() -> str | None:
    """The ``haproxy`` executable (Debian installs it in /usr/sbin), or None."""
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    return found if Path(found).exists() else None


def render_haproxy_config(template: str, servers: Sequence[tuple[str, int]]) -> str:
    """``template`` (deploy/haproxy.cfg) with each list of ``server`` lines replaced by one
    line per ``(instance id, port)`` on 127.0.0.1, keeping the first line's options."""
    out: list[str] = []
    in_list = False
    for line in template.splitlines():
        match = SERVER_LINE.match(line)
        if match is None:
            in_list = False
            out.append(line)
            continue
        if not in_list:
            in_list = True
            indent, options = match["indent"], match["options"]
            out += [f"{indent}server {name} 127.0.0.1:{port}{options}" for name, port in servers]
    return "\n".join(out) + "\n"


class Instance:
    """One Patter instance's process; its output lines (stdout and stderr) in ``lines``."""

    def __init__(self, instance_id: str, port: int, process: asyncio.subprocess.Process,
                 *, echo: bool, on_line: Callable[[], None]) -> None:
        self.id = instance_id
        self.port = port
        self.process = process
        self.lines: list[str] = []
        self._echo = echo
        self._on_line = on_line
        self._reader = asyncio.create_task(self._read())

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: this instance, not through the balancer."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` (SIGTERM: drain, then exit 0)."""
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                text = line.decode(errors="replace").rstrip()
                self.lines.append(text)
                if self._echo:
                    print(f"[{self.id}] {text}", flush=True)
                self._on_line()
        finally:
            self._on_line()

    @property
    def exited(self) -> bool:
        """Whether its output has ended (the process is gone or going)."""
        return self._reader.done()


class LocalCluster(AsyncStartClose):
    """HAProxy (``url``) in front of ``instances`` processes, all on 127.0.0.1.

    Args:
        command: ``command(instance_id, port)``, the command line of one instance.
        instances: How many instances.
        haproxy_config: The HAProxy configuration to run (deploy/haproxy.cfg).
        env: Extra environment for the instances (``PATTER_SERVER_SECRET`` is set if absent).
        port: The balancer's port (0: a free one).
        redis: Also start ``redis-server`` (if installed; with ``redis_config`` if given)
            and give its URL to the instances as ``PATTER_REDIS_URL``.
        echo: Print each instance's output lines, prefixed with its id.
    """

    def __init__(
        self,
        command: InstanceCommand,
        *,
        instances: int = 3,
        haproxy_config: Path,
        env: Mapping[str, str] | None = None,
        port: int = 0,
        redis: bool = False,
        redis_config: Path | None = None,
        echo: bool = False,
    ) -> None:
        if instances < 1:
            raise ValueError("a cluster needs at least one instance")
        self._command = command
        self._count = instances
        self._template = haproxy_config.read_text()
        self._env = {"PATTER_SERVER_SECRET": secrets.token_urlsafe(32), **(env or {})}
        self.port = port or free_port()
        self.stats_port = free_port()
        self._redis = redis
        self._redis_config = redis_config
        self._echo = echo
        self.instances: list[Instance] = []
        self.redis_url: str | None = None
        self._helpers: list[asyncio.subprocess.Process] = []
        self._changed = asyncio.Event()
        self._folder = tempfile.TemporaryDirectory(prefix="patter-cluster-")
        self._haproxy_log = Path(self._folder.name) / "haproxy.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the balancer's front."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start Redis (if asked), the instances, then HAProxy; return once HAProxy sees
        every instance up and ready."""
        try:
            if self._redis:
                await self._start_redis()
            ids = [(f"p{n}", free_port()) for n in range(1, self._count + 1)]
            for instance_id, port in ids:
                await self._start_instance(instance_id, port)
            await asyncio.gather(*(self._wait_healthy(i) for i in self.instances))
            await self._start_haproxy(ids)
            await self.wait_for_servers(lambda states: all(s == "UP" for s in states.values()))
        except BaseException:
            await self.close()
            raise

    async def server_states(self) -> dict[tuple[str, str], str]:
        """HAProxy's view: ``(backend, instance id) → "UP" / "DOWN" / …``."""
        async with httpx.AsyncClient(trust_env=False) as http:
            response = await http.get(f"http://127.0.0.1:{self.stats_port}/stats;csv")
        rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
        return {
            (row["pxname"], row["svname"]): row["status"].split()[0]
            for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")
        }

    async def wait_for_servers(
        self, predicate: Callable[[dict[tuple[str, str], str]], bool], *,
        timeout: float = START_TIMEOUT_S,
    ) -> None:
        """Wait until HAProxy's server states satisfy ``predicate`` (checked every 0.2 s)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if predicate(await self.server_states()):
                        return
                except httpx.TransportError:  # HAProxy is starting
                    if any(helper.returncode is not None for helper in self._helpers):
                        log = self._haproxy_log.read_text()[-3000:] if not self._echo else ""
                        raise RuntimeError(f"haproxy exited:\n{log}") from None
                await asyncio.sleep(0.2)

    async def wait_for_line(
        self, predicate: Callable[[Instance, str], bool], *, timeout: float
    ) -> tuple[Instance, str]:
        """The first output line of any instance matching ``predicate(instance, line)``."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                for instance in self.instances:
                    found = next((ln for ln in instance.lines if predicate(instance, ln)), None)
                    if found is not None:
                        return instance, found
                await self._changed.wait()

    async def close(self) -> None:
        """Stop HAProxy, the instances (SIGTERM, then SIGKILL if they linger) and Redis."""
        helpers, self._helpers = self._helpers, []
        for instance in self.instances:
            instance.stop()
        for process in [*(i.process for i in self.instances), *helpers]:
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        for instance in self.instances:
            await instance._reader
        self._folder.cleanup()

    async def _start_instance(self, instance_id: str, port: int) -> None:
        env = {**os.environ, **self._env, "PATTER_INSTANCE_ID": instance_id}
        if self.redis_url:
            env["PATTER_REDIS_URL"] = self.redis_url
        process = await asyncio.create_subprocess_exec(
            *self._command(instance_id, port), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        self.instances.append(
            Instance(instance_id, port, process, echo=self._echo, on_line=self._changed.set)
        )

    async def _wait_healthy(self, instance: Instance) -> None:
        async with httpx.AsyncClient(trust_env=False) as http:
            async with asyncio.timeout(START_TIMEOUT_S):
                while True:
                    if instance.process.returncode is not None:
                        raise RuntimeError(
                            f"instance {instance.id} exited while starting: "
                            + "\n".join(instance.lines[-30:])
                        )
                    try:
                        if (await http.get(instance.url + "/readyz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)

    async def _start_haproxy(self, servers: Sequence[tuple[str, int]]) -> None:
        haproxy = haproxy_binary()
        if haproxy is None:
            raise RuntimeError("haproxy is not installed: apt-get install haproxy")
        config = Path(self._folder.name) / "haproxy.cfg"
        config.write_text(render_haproxy_config(self._template, servers))
        env = {
            **os.environ,
            "PATTER_LB_BIND": f"127.0.0.1:{self.port}",
            "PATTER_LB_STATS_BIND": f"127.0.0.1:{self.stats_port}",
        }
        with self._haproxy_log.open("ab") as log:
            self._helpers.append(await asyncio.create_subprocess_exec(
                haproxy, "-db", "-f", str(config), env=env, stdin=asyncio.subprocess.DEVNULL,
                stdout=sys.stderr if self._echo else log,
                stderr=sys.stderr if self._echo else log,
            ))

    async def _start_redis(self) -> None:
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(redis).exists():
            return
        port = free_port()
        config = [str(self._redis_config)] if self._redis_config else []
        self._helpers.append(await asyncio.create_subprocess_exec(
            redis, *config, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self._folder.name,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        ))
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.1)
                    continue
                writer.close()
                break
        self.redis_url = f"redis://127.0.0.1:{port}/0"


async def _serve_locally(args: argparse.Namespace) -> None:
    patter_command = str(Path(sys.executable).parent / "patter")

    def command(_instance_id: str, port: int) -> list[str]:
        return [patter_command, "serve", args.target, "--host", "127.0.0.1",
                "--port", str(port), "--drain-timeout", str(args.drain_timeout)]

    redis = not args.no_redis and shutil.which("redis-server") is not None
    async with LocalCluster(
        command, instances=args.instances, haproxy_config=args.haproxy_config,
        port=args.port, redis=redis, redis_config=args.redis_config, echo=True,
    ) as cluster:
        ports = ", ".join(f"{i.id} on {i.port}" for i in cluster.instances)
        print(f"balancer: {cluster.url} (tunnel WEBHOOK_URL here); instances: {ports}; "
              f"HAProxy stats: http://127.0.0.1:{cluster.stats_port}/stats"
              + (f"; redis: {cluster.redis_url}" if cluster.redis_url else ""), flush=True)
        await asyncio.Event().wait()  # until Ctrl-C


def main(argv: Sequence[str] | None = None) -> None:
    """``deploy/local-cluster``: HAProxy and N instances of your agent on loopback."""
    parser = argparse.ArgumentParser(
        prog="deploy/local-cluster",
        description="Serve TARGET (FILE.py:NAME, as `patter serve` takes it) as N instances "
        "behind HAProxy on 127.0.0.1, with redis-server when installed. Settings come from "
        "the environment and .env, as for `patter serve`. Ctrl-C drains and stops them all.",
    )
    parser.add_argument("target")
    parser.add_argument("-n", "--instances", type=int, default=3)
    parser.add_argument("--port", type=int, default=8080, help="the balancer's port")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument("--haproxy-config", type=Path, required=True)
    parser.add_argument("--redis-config", type=Path, default=None)
    parser.add_argument("--no-redis", action="store_true", help="do not start redis-server")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_locally(args))


if __name__ == "__main__":
    main()
