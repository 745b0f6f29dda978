"""TLS with a test-made CA, a least-privilege ACL user, and secrets that never leak into logs, reprs or errors.

A throwaway ``redis-server`` listens on a plain loopback port (for the test's own admin client)
and on a TLS port that requires a client certificate. These tests need the real server: the
in-memory fakeredis has neither TLS nor ACLs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ipaddress
import logging
import secrets
import shutil
import traceback

import numpy as np
import pandas as pd
import pytest
import redis
from cryptography import x509
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from redtick import errors, frames, snapshot
from redtick.caches.base import BaseCache, EncryptedCache
from redtick.caches.market import MarketDataCache
from redtick.caches.prices import PriceCache
from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.connection import Connection
from redtick.service import CacheService
from tests.conftest import RedisServer, free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs a redis-server binary")

# The commands redtick sends: found with INFO commandstats over the suite, then pruned by running
# the main paths below without each one; kept beyond those are UNWATCH (a failed transaction),
# SCRIPT LOAD (after the server lost its scripts), INFO (health), SUBSCRIBE (the alert channel's
# listeners) and the generic RedisClient's EXISTS, TTL, SISMEMBER, SREM, RPUSH. Lua scripts'
# own redis.call()s are checked against the ACL too (TIME, PTTL, ZCOUNT, PEXPIREAT, PUBLISH, XADD, PEXPIRE).
REDTICK_COMMANDS = " ".join([
    "get set mget append getrange setrange strlen del unlink exists expire pexpireat ttl pttl type",
    "hget hmget hset hdel hgetall sadd smembers sismember srem",
    "zadd zrem zrange zrangebyscore zrevrangebyscore zremrangebyscore zcard zcount",
    "lpush rpush lrange ltrim llen pexpire",
    "xadd xtrim xreadgroup xack xautoclaim xgroup|create xinfo|groups",
    "multi exec watch unwatch eval evalsha script|load script|exists",
    "scan ping info time publish subscribe client|setname",
]).split()


def acl_rule(namespace: str, password: str) -> list[str]:
    """The ACL SETUSER arguments of a user that may touch only ``namespace`` and run only redtick's commands."""
    return ["on", f">{password}", "resetkeys", f"~{namespace}:*", "resetchannels", f"&{namespace}:*",
            "-@all", *(f"+{c}" for c in REDTICK_COMMANDS)]


# -- certificates ------------------------------------------------------------------------------------
def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(subject: str, key, issuer_name: x509.Name, issuer_key, *, ca: bool = False, server: bool = False):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path, key=None, cert=None) -> str:
    if key is not None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    else:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> dict[str, str]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("redtick test CA", ca_key, _name("redtick test CA"), ca_key, ca=True)
    files = {"ca": _write(folder / "ca.crt", cert=ca_cert)}
    for role in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(f"redtick test {role}", key, ca_cert.subject, ca_key, server=role == "server")
        files[f"{role}_key"] = _write(folder / f"{role}.key", key=key)
        files[f"{role}_cert"] = _write(folder / f"{role}.crt", cert=cert)
    return files


@pytest.fixture(scope="module")
def tls_server(tls_files):
    """A server with a plain admin port and a TLS port that requires a client certificate."""
    tls_port = free_port()
    server = RedisServer(
        shutil.which("redis-server"),
        "--tls-port", str(tls_port), "--tls-cert-file", tls_files["server_cert"],
        "--tls-key-file", tls_files["server_key"], "--tls-ca-cert-file", tls_files["ca"],
        "--tls-auth-clients", "yes",
    )
    server.start()
    server.tls_port = tls_port
    yield server
    server.stop()


@pytest.fixture
def admin(tls_server):
    client = redis.Redis(port=tls_server.port)
    yield client
    client.close()


def tls_settings(tls_server, tls_files, **overrides) -> Settings:
    base = Settings(url=f"rediss://127.0.0.1:{tls_server.tls_port}/0", ssl_ca_certs=tls_files["ca"],
                    ssl_certfile=tls_files["client_cert"], ssl_keyfile=tls_files["client_key"],
                    namespace="s" + secrets.token_hex(4), connect_timeout=2.0, socket_timeout=5.0)
    return dataclasses.replace(base, **overrides)


# -- what redtick does on a server: one pass over its main paths --------------------------------------
def exercise(conn: Connection, encryption_key: str | None = None) -> None:
    """Series, caches, sessions, alerts, rate limits, snapshots and the cache service, round-tripped."""
    n = 500
    ticks = pd.DataFrame({"ts": 1_704_067_200_000 + np.arange(n) * 1_000, "price": 100 + np.arange(n) * 0.01,
                          "volume": np.ones(n), "trade_id": np.arange(n)})
    assert frames.write_ticks(ticks, "SECURE", conn=conn).written == n
    assert frames.write_ticks(ticks, "SECURE", conn=conn).duplicates == n
    stored = frames.load_ticks("SECURE", conn=conn)
    np.testing.assert_array_equal(stored["price"].to_numpy(), ticks["price"].to_numpy())
    assert frames.load_ohlcv("SECURE", "1m", conn=conn)["volume"].sum() == n
    assert len(frames.load_ohlcv(["SECURE", "SECURE2"], "2h", conn=conn, missing="skip")) == 1
    bars = [{"ts": "2024-01-01T00:00Z", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 7.0}]
    assert frames.write_candles(bars, "SECUREBAR", "1m", conn=conn).written == 1
    snapshot.save("SECURE", "secure-snap", conn=conn)
    assert len(snapshot.load("secure-snap", conn=conn)) == n
    assert "secure-snap" in snapshot.list_snapshots(conn=conn)
    assert snapshot.delete("secure-snap", conn=conn)
    asyncio.run(_exercise_caches(conn, encryption_key))


async def _exercise_caches(conn: Connection, encryption_key: str | None) -> None:
    try:
        prices = PriceCache(conn)
        await prices.set_current_price("SECURE", 106.0, 2.0, timestamp=1_704_068_000_000, trade_id=10_000)
        assert await prices.get_current_price("SECURE") == 106.0
        assert len(await prices.get_price_history("SECURE", limit=10)) == 10
        assert len(await prices.get_ohlcv_data("SECURE", "1h")) >= 1
        alert = await prices.set_price_alert("user-1", "SECURE", 200.0, "above")
        assert await prices.check_price_alerts("SECURE", 250.0) == [alert]
        fired_by_write = await prices.set_price_alert("user-1", "SECURE", 300.0, "above")
        await prices.set_current_price("SECURE", 301.0, 1.0, timestamp=1_704_068_001_000, trade_id=10_001)
        assert await prices.check_price_alerts("SECURE", 301.0) == [fired_by_write]
        feed = prices.fired_alerts("acl", "c1", start="0", claim_idle=0, idle_timeout=0.3)
        assert [a.alert_id async for a in feed] == [alert, fired_by_write]
        assert await prices.alerts.cleanup_expired_alerts("SECURE") == 0
        market = MarketDataCache(conn)
        await market.set_symbol_price("SECURE", {"price": 1.5, "volume": 3.0})
        assert (await market.get_symbol_price("SECURE"))["price"] == 1.5
        await market.add_trade_history("SECURE", {"price": 1.5, "quantity": 1.0, "side": "buy"})
        assert len(await market.get_trade_history("SECURE")) == 1
        sessions = UserSessionCache(conn=conn, encryption_key=encryption_key)
        session_id = await sessions.set_user_session("user-1", {"role": "trader"})
        assert (await sessions.get_session_by_id(session_id))["user_id"] == "user-1"
        await sessions.set_user_preferences("user-1", {"theme": "dark"})
        assert await sessions.get_user_preferences("user-1") == {"theme": "dark"}
        assert not await sessions.is_rate_limited("user-1", "login", limit=5)
        plain = BaseCache("plain", conn=conn)
        await plain.set("k", {"v": 1})
        assert await plain.get("k") == {"v": 1}
        if encryption_key is not None:
            vault = EncryptedCache("vault", conn=conn, encryption_key=encryption_key)
            await vault.set("k", {"secret": True})
            assert await vault.get("k") == {"secret": True}
        service = CacheService(conn)
        assert (await service.health_check())["status"] in ("healthy", "degraded")
        assert (await service.get_cache_summary())["total_keys"] > 0
        await service.cleanup_expired_data()
        await service.clear_all_cache()
    finally:
        await conn.aclose()


# -- TLS -----------------------------------------------------------------------------------------------
def test_tls_round_trip_with_a_client_certificate(tls_server, tls_files):
    conn = Connection(tls_settings(tls_server, tls_files))
    try:
        exercise(conn)
    finally:
        conn.close()


def test_tls_from_host_settings(tls_server, tls_files):
    settings = tls_settings(tls_server, tls_files, url=None, host="127.0.0.1", port=tls_server.tls_port, ssl=True)
    conn = Connection(settings)
    try:
        assert conn.sync.ping()
        assert settings.safe_url.startswith("rediss://")
    finally:
        conn.close()


def test_tls_without_client_certificate_or_with_an_unknown_ca_is_unavailable(tls_server, tls_files):
    for overrides in ({"ssl_certfile": None, "ssl_keyfile": None}, {"ssl_ca_certs": tls_files["client_cert"]}):
        conn = Connection(tls_settings(tls_server, tls_files, retries=0, **overrides))
        with pytest.raises(errors.Unavailable):
            conn.sync.ping()
        conn.close()


# -- ACL ------------------------------------------------------------------------------------------------
@pytest.fixture
def acl_user(admin):
    """A user limited to one namespace and to redtick's commands; removed after the test."""
    namespace, username, password = "acl" + secrets.token_hex(3), "rt" + secrets.token_hex(3), secrets.token_urlsafe(16)
    admin.execute_command("ACL", "SETUSER", username, "reset", *acl_rule(namespace, password))
    yield namespace, username, password
    admin.execute_command("ACL", "DELUSER", username)


def test_least_privilege_user_runs_every_main_path(tls_server, tls_files, acl_user, admin):
    namespace, username, password = acl_user
    admin.set("elsewhere:secret", b"1")
    conn = Connection(tls_settings(tls_server, tls_files, namespace=namespace, username=username, password=password))
    try:
        exercise(conn, encryption_key=Fernet.generate_key().decode())
        # A command outside the list, and a key outside the namespace, are typed errors naming the ACL.
        for call in (lambda: conn.sync.execute_command("FLUSHALL"), lambda: conn.sync.config_get("maxmemory"),
                     lambda: conn.sync.get("elsewhere:secret"), lambda: conn.sync.keys("*")):
            with pytest.raises(errors.RedisError, match="ACL"):
                call()
        assert admin.get("elsewhere:secret") == b"1"
    finally:
        admin.delete("elsewhere:secret")
        conn.close()


async def test_least_privilege_user_async_denial_is_typed(tls_server, tls_files, acl_user):
    namespace, username, password = acl_user
    conn = Connection(tls_settings(tls_server, tls_files, namespace=namespace, username=username, password=password))
    client = conn.async_client()
    try:
        assert await client.ping()
        with pytest.raises(errors.RedisError, match="ACL"):
            await client.execute_command("FLUSHDB")
    finally:
        await conn.aclose()


# -- secrets ----------------------------------------------------------------------------------------------
def _texts_of(exc: BaseException) -> list[str]:
    """Message, repr and formatted traceback of an exception and every exception it chains to."""
    texts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        exc = exc.__cause__ or exc.__context__
    return texts


def test_secrets_never_reach_logs_reprs_or_errors(tls_server, tls_files, acl_user, caplog):
    namespace, username, password = acl_user
    fernet_key = Fernet.generate_key().decode()
    admin_token = secrets.token_urlsafe(24)
    caplog.set_level(logging.DEBUG)  # every logger, redis-py's included
    texts: list[str] = []
    url = f"rediss://{username}:{password}@127.0.0.1:{tls_server.tls_port}/0"
    env = {"REDIS_URL": url, "REDIS_SSL_CA_CERTS": tls_files["ca"], "REDIS_SSL_CERTFILE": tls_files["client_cert"],
           "REDIS_SSL_KEYFILE": tls_files["client_key"], "REDIS_PASSWORD": password, "REDIS_USERNAME": username,
           "REDTICK_NAMESPACE": namespace, "REDTICK_ENCRYPTION_KEY": fernet_key, "REDTICK_ADMIN_TOKEN": admin_token,
           "REDIS_CONNECT_TIMEOUT": "1", "REDIS_RETRIES": "1"}
    good = Settings.from_env(env)

    # Connect failures: a wrong password (in the URL and in REDIS_PASSWORD) and an unreachable server.
    wrong = secrets.token_urlsafe(16)
    failing = [
        Settings.from_env({**env, "REDIS_URL": url.replace(password, wrong), "REDIS_PASSWORD": wrong}),
        Settings.from_env({**env, "REDIS_URL": f"rediss://{username}:{password}@127.0.0.1:{free_port()}/0"}),
        dataclasses.replace(good, url=None, host="127.0.0.1", port=free_port(), ssl=True),
    ]
    for number, settings in enumerate(failing):
        conn = Connection(settings)
        texts += [repr(settings), repr(conn), settings.safe_url]
        with pytest.raises(errors.Unavailable) as caught:
            conn.sync.ping()
        # A wrong password is an authentication error too (the platform's doc catches it as one).
        assert isinstance(caught.value, errors.AuthError) == (number == 0), caught.value
        texts += _texts_of(caught.value)
        texts += [repr(conn.sync), repr(conn.sync.connection_pool)]
        conn.close()
    with pytest.raises(errors.ConfigurationError) as bad_key:
        Settings.from_env({**env, "REDTICK_ENCRYPTION_KEY": fernet_key[:-2]})
    texts += _texts_of(bad_key.value)

    # Normal paths with the password and the Fernet key in use, and a denied command.
    conn = Connection(good)
    texts += [repr(good), str(good), repr(conn), good.safe_url, repr(conn.sync), repr(conn.sync.connection_pool)]
    exercise(conn, encryption_key=fernet_key)
    vault = EncryptedCache("vault", conn=conn)
    texts += [repr(vault), repr(UserSessionCache(conn=conn))]
    with pytest.raises(errors.RedisError) as denied:
        conn.sync.execute_command("CONFIG", "GET", "requirepass")
    texts += _texts_of(denied.value)
    conn.close()

    texts += [record.getMessage() for record in caplog.records]
    texts += [logging.Formatter().format(record) for record in caplog.records]
    assert caplog.records, "expected log records at DEBUG"
    for secret in (password, wrong, fernet_key, admin_token):
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"a secret leaked into: {leaks[0][:300]}"
