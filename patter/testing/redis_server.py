"""A real ``redis-server`` on loopback for tests, benchmarks and local clusters.

Usage::

    with RedisServer() as redis:              # a free port, a temporary directory
        phone = Patter(..., redis_url=redis.url)
        ...
        redis.stop()                          # Redis lost mid-run
        redis.start()                         # and back, on the same port

Nothing is written to disk (``--save ''``, ``--appendonly no``). The binary comes from
Debian's ``redis-server`` package (``make cluster-deps`` installs it).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from patter.testing.harness import free_port

START_TIMEOUT_S = 10.0


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1``; ``start()``/``stop()`` may repeat."""

    def __init__(self, *, port: int | None = None, binary: str = "redis-server") -> None:
        found = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/bin")
        if found is None:
            raise RuntimeError(
                f"{binary} not found: install Debian's redis-server package (make cluster-deps)"
            )
        self._binary = found
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="patter-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is up."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        if self.running:
            return
        with (Path(self._dir.name) / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                [
                    self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
                    "--save", "", "--appendonly", "no", "--dir", self._dir.name,
                    "--protected-mode", "yes", "--loglevel", "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers_ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (its data is gone: nothing is saved)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False
