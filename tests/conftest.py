"""One Redis fixture for the whole suite, parametrised over the embedded fakeredis and a real server.

A test that asks for ``conn`` runs twice: on a fresh in-process fakeredis server and on a real
``redis-server`` (a throwaway one started on a free port for the session, or ``REDTICK_TEST_REDIS_URL``).
Without the binary the real leg is skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time

import fakeredis
import pytest
import redis

from redtick.config import Settings
from redtick.connection import Connection

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port that a test may stop and restart."""

    def __init__(self, binary: str, *extra: str):
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redtick-redis-")
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


@pytest.fixture(scope="session")
def redis_server():
    """The session's throwaway real server, or None when there is no binary (a failure in CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("CI=true but redis-server is not on PATH: the real-Redis leg must run in CI")
        return None
    server = RedisServer(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def real_redis_url(redis_server):
    url = os.environ.get("REDTICK_TEST_REDIS_URL")
    if url:
        return url
    if redis_server is None:
        pytest.skip("no redis-server on PATH (set REDTICK_TEST_REDIS_URL or install redis-server)")
    return redis_server.url


def _namespace() -> str:
    return "t" + secrets.token_hex(4)


@pytest.fixture(params=["embedded", "real"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(backend, request) -> Settings:
    """Settings for the backend under test, in a namespace of the test's own."""
    if backend == "embedded":
        return Settings(namespace=_namespace())
    url = request.getfixturevalue("real_redis_url")
    return Settings(url=url, namespace=_namespace(), socket_timeout=5.0, connect_timeout=2.0)


@pytest.fixture
def conn(settings, backend):
    """A Connection to a fresh embedded server or to the real server; the test's keys are removed after."""
    server = fakeredis.FakeServer(version=(7, 0)) if backend == "embedded" else None
    connection = Connection(settings, embedded_server=server)
    yield connection
    if backend == "real":
        client = connection.sync
        keys = list(client.scan_iter(match=connection.keys.everything(), count=1000))
        if keys:
            client.delete(*keys)
    connection.close()
