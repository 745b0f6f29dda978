"""Throwaway redis-server processes on free loopback ports, for the suite and the benchmarks.

No side effects on import (unlike conftest, which points REDTICK_HOME at a throwaway folder), so a
benchmark can use them too. Every folder a server makes is listed in ``CREATED_DIRS``; ``close()``
removes one, and the test session removes them all when it ends.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time

import redis

CREATED_DIRS: list[str] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, so both fit below 65536."""
    for _ in range(200):
        port = random.randrange(20_000, 45_000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10_000))
                return port
        except OSError:
            continue
    raise RuntimeError("no free port pair for a cluster node")


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port that a test may stop and restart.

    ``extra`` arguments come last, so they override the defaults (``--appendonly yes`` for one with AOF).
    """

    def __init__(self, binary: str, *extra: str, port: int | None = None):
        self.binary = binary
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="redtick-redis-")
        CREATED_DIRS.append(self.dir)
        self.extra = extra
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir, *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll PING until the server answers; fail after ``timeout`` seconds."""
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if probe.ping():
                    probe.close()
                    return
            except redis.exceptions.ConnectionError:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}") from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"redis-server on port {self.port} did not answer in {timeout}s") from None
                time.sleep(0.05)  # polling a readiness condition, not waiting and hoping

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
