"""One Redis fixture for the whole suite, parametrised over the in-memory fakeredis and a real server.

A test that asks for ``conn`` runs three times: on a fresh in-process fakeredis server, on a real
``redis-server`` (a throwaway one started on a free port for the session, or ``REDTICK_TEST_REDIS_URL``)
and on a throwaway 3-master Redis Cluster (or ``REDTICK_TEST_CLUSTER_URL``). Without the binaries the
real legs are skipped, except under ``CI=true``, where that is a failure. A test marked
``@pytest.mark.single_node("why")`` skips the cluster leg.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time

import fakeredis
import pytest
import redis

from redtick.config import Settings
from redtick.connection import Connection
from redtick.store import LocalStore
from tests.servers import CREATED_DIRS, RedisServer, free_cluster_port, free_port

__all__ = ["IN_CI", "RedisServer", "free_cluster_port", "free_port"]

# Nothing the suite runs may touch the user's own store: the local store of every test process
# and its subprocesses lives in a throwaway REDTICK_HOME, stopped when the session ends.
_TEMP_DIRS = [tempfile.mkdtemp(prefix="redtick-test-home-")]  # removed when the session ends
os.environ["REDTICK_HOME"] = _TEMP_DIRS[0]
os.environ.setdefault("REDTICK_STORE_LINGER", "2s")  # settings are read when first used, not on import

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def chromium() -> str:
    """Debian's chromium, for the tests that render in a real browser: skipped without it, failed under CI."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if IN_CI:
            pytest.fail("CI=true but chromium is not installed (.ci/run installs Debian's chromium)")
        pytest.skip("chromium is not installed")
    return found


@pytest.fixture(autouse=True, scope="session")
def _stop_the_test_store():
    yield
    LocalStore(_TEMP_DIRS[0]).stop()
    for folder in _TEMP_DIRS + CREATED_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


class RedisClusterServers:
    """A throwaway Redis Cluster of ``masters`` ``redis-server`` processes (no replicas) on free ports."""

    def __init__(self, binary: str, cli: str, masters: int = 3):
        self.servers = [RedisServer(binary, "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                                    "--cluster-config-file", "nodes.conf", port=free_cluster_port())
                        for _ in range(masters)]
        self.cli = cli

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{s.port}" for s in self.servers)

    def start(self, timeout: float = 30.0) -> None:
        for server in self.servers:
            server.start()
        subprocess.run([self.cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in self.servers),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=timeout)
        deadline = time.monotonic() + timeout
        for server in self.servers:  # every node must agree the cluster is whole before tests use it
            probe = redis.Redis(port=server.port, socket_timeout=1.0)
            while probe.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cluster on ports {[s.port for s in self.servers]} not ok in {timeout}s")
                time.sleep(0.05)  # polling a readiness condition, not waiting and hoping
            probe.close()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(scope="session")
def redis_cluster():
    """The session's throwaway 3-master cluster, or None without the binaries (a failure in CI)."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        if IN_CI:
            pytest.fail("CI=true but redis-server or redis-cli is not on PATH: the cluster leg must run in CI")
        return None
    cluster = RedisClusterServers(binary, cli)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _test_url(variable: str, servers, missing: str) -> str:
    """The URL in ``variable`` if set, else that of the session's throwaway ``servers``; skip without either."""
    url = os.environ.get(variable)
    if url:
        return url
    if servers is None:
        pytest.skip(f"{missing} (set {variable} or install redis-server)")
    return servers.url


@pytest.fixture(scope="session")
def cluster_redis_url(redis_cluster):
    return _test_url("REDTICK_TEST_CLUSTER_URL", redis_cluster, "no redis-server/redis-cli on PATH")


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
    return _test_url("REDTICK_TEST_REDIS_URL", redis_server, "no redis-server on PATH")


def _namespace() -> str:
    return "t" + secrets.token_hex(4)


@pytest.fixture(params=["memory", "real", "cluster"])
def backend(request) -> str:
    if request.param == "cluster":
        reason = request.node.get_closest_marker("single_node")
        if reason is not None:
            pytest.skip(f"single-node only: {reason.args[0]}")
    return request.param


def _tick_compression() -> bool:
    """``REDTICK_TICK_COMPRESSION`` as the suite runs (on unless set): the suite runs once with it off too."""
    return Settings.from_env({"REDTICK_TICK_COMPRESSION": os.environ.get("REDTICK_TICK_COMPRESSION", "")}).tick_compression


@pytest.fixture
def settings(backend, request) -> Settings:
    """Settings for the backend under test, in a namespace of the test's own."""
    if backend == "memory":
        return Settings(url="memory://", namespace=_namespace(), tick_compression=_tick_compression())
    url = request.getfixturevalue("cluster_redis_url" if backend == "cluster" else "real_redis_url")
    return Settings(url=url, namespace=_namespace(), socket_timeout=5.0, connect_timeout=2.0,
                    tick_compression=_tick_compression())


@pytest.fixture
def conn(settings, backend):
    """A Connection to a fresh in-memory server or to the real server; the test's keys are removed after."""
    server = fakeredis.FakeServer(version=(7, 0)) if backend == "memory" else None
    connection = Connection(settings, memory_server=server)
    yield connection
    if backend != "memory":
        client = connection.sync  # on a cluster, scan_iter visits every master and delete splits by slot
        keys = list(client.scan_iter(match=connection.keys.everything(), count=1000))
        if keys:
            client.delete(*keys)
    connection.close()
