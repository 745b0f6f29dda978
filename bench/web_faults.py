"""A load and fault drill of the HTTP API: concurrent clients while Redis is paused, killed and restarted.

Run: ``.venv/bin/python bench/web_faults.py [--clients 20] [--phase 3] [--pause 4] [--deadline 2]
[--socket-timeout 0.5]``. A throwaway ``redis-server`` (AOF, fsync always) and a live ``redtick
serve`` on loopback; ``--clients`` asyncio clients send a mix of public reads (``/health``,
``/price``, ``/market-data``), authenticated reads (``/price-alerts``) and writes (``POST
/price-alert``) through these phases, each ``--phase`` seconds unless said otherwise:

1. **steady**: the baseline, in the same run;
2. **paused**: ``CLIENT PAUSE <--pause> ALL``, longer than the socket timeout and the deadline;
3. **after pause**;
4. **killed**: ``SIGKILL`` to the server;
5. **restarted**: the server starts again on its port (its AOF brings the data back); the phase
   lasts until every endpoint has answered 2xx once more (at most 30 s): the recovery time;
6. **recovered**.

Every client waits at most the deadline plus ``--margin`` for an answer; a request not answered
by then counts as a client timeout, and a 2xx whose body is not the seeded data as a wrong body.
A request counts in the phase it started in. Prints, per phase: requests, answers by status, client
timeouts and transport errors, and p50 / p99 / max latency. The app is never restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redtick.config import Settings
from redtick.connection import Connection
from redtick.service import CacheService

API = "/api/v1/cache"
TOKEN = "drill-admin-token"
ENDPOINTS = ("health", "price", "market", "alerts", "create")


@dataclasses.dataclass
class Answer:
    phase: str
    endpoint: str
    status: int | str  # an HTTP status, or "client-timeout" / "transport-error" / "wrong-body"
    seconds: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A throwaway ``redis-server`` that persists every write (AOF, fsync always) and may be killed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redtick-web-faults-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        probe = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                probe.ping()
                probe.close()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling readiness against a deadline

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def pause(self, ms: int) -> None:
        admin = redis.Redis(port=self.port)
        admin.execute_command("CLIENT", "PAUSE", ms, "ALL")
        admin.close()

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


async def seed(url: str, namespace: str) -> str:
    """A price, market data and a session; returns the session's bearer token."""
    conn = Connection(Settings(url=url, namespace=namespace))
    service = CacheService(conn)
    await service.get_price_cache().set_current_price("BTCUSDT", 50_000.0, volume=1.0)
    await service.get_market_cache().set_symbol_price("BTCUSDT", {"price": 50_000.0})
    token = await service.get_session_cache().set_user_session("drill", {"device": "bench"}, ttl=3600)
    await conn.aclose()
    conn.close()
    return token


def serve(url: str, namespace: str, *, deadline: float, socket_timeout: float, log_path: str,
          **settings: str) -> tuple[subprocess.Popen, str]:
    """A live ``redtick serve`` on ``url``; ``settings`` override the drill's environment (``REDTICK_...="..."``)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "REDTICK_"))}
    env.update(
        REDIS_URL=url, REDTICK_NAMESPACE=namespace, REDTICK_ADMIN_TOKEN=TOKEN,
        REDTICK_HOME=tempfile.mkdtemp(prefix="redtick-web-faults-home-"),
        REDIS_SOCKET_TIMEOUT=str(socket_timeout), REDIS_CONNECT_TIMEOUT=str(socket_timeout),
        REDIS_POOL_TIMEOUT=str(socket_timeout), REDTICK_REQUEST_TIMEOUT=str(deadline),
        REDTICK_WRITE_RATE_LIMIT="1000000/1m", REDTICK_MAX_ALERTS_PER_USER="1000000",
    )
    env.update(settings)
    command = shutil.which("redtick", path=os.path.dirname(sys.executable)) or "redtick"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([command, "serve", "--port", str(port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    until = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base}{API}/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > until:
            process.kill()
            raise RuntimeError(f"redtick serve did not start: {Path(log_path).read_text()[-2000:]}")
        time.sleep(0.05)  # polling readiness against a deadline


def _expected(endpoint: str, body: dict) -> bool:
    """True if a 2xx body is the one this endpoint gives for the seeded data."""
    data = body.get("data")
    if endpoint == "health":
        return body.get("status") == "healthy"
    if endpoint == "price":
        return data["symbol"] == "BTCUSDT" and data["price"] == 50_000.0
    if endpoint == "market":
        return data["symbol"] == "BTCUSDT" and data["price"]["price"] == 50_000.0
    if endpoint == "alerts":
        return isinstance(data, list) and all(a["user_id"] == "drill" for a in data)
    return isinstance(data.get("alert_id"), str)


class Drill:
    """The clients and the phase they are in."""

    def __init__(self, base: str, token: str, clients: int, client_timeout: float):
        self.base = base
        self.auth = {"Authorization": f"Bearer {token}"}
        self.clients = clients
        self.client_timeout = client_timeout
        self.phase = "steady"
        self.answers: list[Answer] = []
        self.running = True

    async def _one(self, http: httpx.AsyncClient, endpoint: str) -> None:
        phase, started = self.phase, time.perf_counter()
        try:
            if endpoint == "health":
                response = await http.get(f"{API}/health")
            elif endpoint == "price":
                response = await http.get(f"{API}/price/BTCUSDT")
            elif endpoint == "market":
                response = await http.get(f"{API}/market-data/BTCUSDT")
            elif endpoint == "alerts":
                response = await http.get(f"{API}/price-alerts", params={"limit": 10}, headers=self.auth)
            else:
                response = await http.post(f"{API}/price-alert", headers=self.auth,
                                           json={"symbol": "BTCUSDT", "target_price": 60_000.0})
            status: int | str = response.status_code
            if status < 300 and not _expected(endpoint, response.json()):
                status = "wrong-body"  # another request's reply: what a connection reused mid-reply would give
        except httpx.TimeoutException:
            status = "client-timeout"
        except httpx.TransportError:
            status = "transport-error"
        self.answers.append(Answer(phase, endpoint, status, time.perf_counter() - started))

    async def client(self, number: int) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=self.client_timeout) as http:
            turn = number
            while self.running:
                await self._one(http, ENDPOINTS[turn % len(ENDPOINTS)])
                turn += 1

    def recovered_since(self, start: int) -> bool:
        ok = {a.endpoint for a in self.answers[start:] if isinstance(a.status, int) and a.status < 300}
        return ok >= set(ENDPOINTS)


async def run_drill(clients: int = 20, phase: float = 3.0, pause: float = 4.0, deadline: float = 2.0,
                    socket_timeout: float = 0.5, margin: float = 1.5) -> dict:
    """Run the drill; returns ``{"answers": [...], "phases": {name: seconds}, "recovery_seconds": float}``."""
    server = Server()
    server.start()
    namespace = "drill"
    log_path = os.path.join(server.dir, "serve.log")
    process = None
    try:
        token = await seed(server.url, namespace)
        process, base = serve(server.url, namespace, deadline=deadline, socket_timeout=socket_timeout,
                              log_path=log_path)
        drill = Drill(base, token, clients, deadline + margin)
        tasks = [asyncio.ensure_future(drill.client(n)) for n in range(clients)]
        phases: dict[str, float] = {}

        async def run_phase(name: str, seconds: float) -> None:
            drill.phase, started = name, time.monotonic()
            await asyncio.sleep(seconds)  # the phase's length: load runs meanwhile
            phases[name] = time.monotonic() - started

        await run_phase("steady", phase)
        server.pause(int(pause * 1000))
        await run_phase("paused", pause + 0.5)
        await run_phase("after pause", phase)
        server.kill()
        await run_phase("killed", phase)
        drill.phase, restarted = "restarted", time.monotonic()
        first = len(drill.answers)
        server.start()
        while not drill.recovered_since(first) and time.monotonic() - restarted < 30:
            await asyncio.sleep(0.05)  # polling recovery against a deadline
        recovery = time.monotonic() - restarted
        phases["restarted"] = recovery
        await run_phase("recovered", phase)
        drill.running = False
        await asyncio.gather(*tasks)
        return {"answers": drill.answers, "phases": phases, "recovery_seconds": recovery,
                "recovered": drill.recovered_since(first), "client_timeout": deadline + margin,
                "server_alive": process.poll() is None}
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        server.remove()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def table(result: dict) -> str:
    """The drill's figures, one row per phase."""
    by_phase: dict[str, list[Answer]] = collections.defaultdict(list)
    for answer in result["answers"]:
        by_phase[answer.phase].append(answer)
    lines = ["| phase | seconds | requests | answers by status | client timeouts | p50 / p99 / max ms |",
             "|---|---|---|---|---|---|"]
    for name, seconds in result["phases"].items():
        answers = by_phase.get(name, [])
        statuses = collections.Counter(a.status for a in answers)
        shown = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
        timings = [a.seconds * 1000 for a in answers]
        lines.append(f"| {name} | {seconds:.1f} | {len(answers)} | {shown} | {statuses.get('client-timeout', 0)} | "
                     f"{percentile(timings, 0.5):.0f} / {percentile(timings, 0.99):.0f} / {max(timings, default=0):.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--phase", type=float, default=3.0, help="seconds of each phase")
    parser.add_argument("--pause", type=float, default=4.0, help="seconds of CLIENT PAUSE")
    parser.add_argument("--deadline", type=float, default=2.0, help="REDTICK_REQUEST_TIMEOUT")
    parser.add_argument("--socket-timeout", type=float, default=0.5, help="REDIS_SOCKET_TIMEOUT")
    parser.add_argument("--margin", type=float, default=1.5, help="seconds a client waits beyond the deadline")
    args = parser.parse_args()
    result = asyncio.run(run_drill(args.clients, args.phase, args.pause, args.deadline, args.socket_timeout, args.margin))
    print(table(result))
    five_hundreds = sum(1 for a in result["answers"] if a.status == 500)
    late = sum(1 for a in result["answers"] if not isinstance(a.status, int))
    print(f"\n{len(result['answers'])} requests; status 500: {five_hundreds}; not answered within "
          f"{result['client_timeout']:.1f} s: {late}; recovered {result['recovery_seconds']:.2f} s after the restart "
          f"without restarting the app ({'yes' if result['recovered'] and result['server_alive'] else 'NO'})")
    return 0 if five_hundreds == 0 and late == 0 and result["recovered"] else 1


if __name__ == "__main__":
    sys.exit(main())
