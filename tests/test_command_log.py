"""The DEBUG command log: one line per round trip with name, keys and duration, and never a secret."""

from __future__ import annotations

import logging
import secrets
import shutil

import pytest
import redis
from cryptography.fernet import Fernet

from redtick.caches.base import EncryptedCache
from redtick.caches.market import MarketDataCache
from redtick.caches.sessions import UserSessionCache
from redtick.config import Settings
from redtick.connection import Connection
from redtick.metrics import Metrics
from tests.conftest import RedisServer

PASSWORD = "pw-" + secrets.token_hex(12)
FERNET_KEY = Fernet.generate_key().decode()
VALUE_MARK = "value-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def password_server():
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH")
    server = RedisServer(binary)
    server.start()  # its readiness probe has no password: require one once it answers
    probe = redis.Redis(port=server.port)
    probe.config_set("requirepass", PASSWORD)
    probe.close()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "real"])
def secret_conn(request):
    """A connection whose settings hold a password and a Fernet key (the real server requires the password)."""
    namespace = "t" + secrets.token_hex(4)
    if request.param == "memory":
        conn = Connection(Settings(url="memory://", namespace=namespace, password=PASSWORD, encryption_key=FERNET_KEY))
    else:
        server = request.getfixturevalue("password_server")
        settings = Settings(url=server.url, namespace=namespace, password=PASSWORD, encryption_key=FERNET_KEY)
        conn = Connection(settings)
    yield conn
    conn.close()


def _every_text(record: logging.LogRecord) -> str:
    """All a handler could print of a record: message, arguments and extra attributes."""
    parts = [record.getMessage(), repr(record.args), repr(record.msg)]
    parts += [repr(v) for k, v in vars(record).items() if k not in ("args", "msg")]
    return "\n".join(parts)


async def test_no_secret_reaches_a_log_line(secret_conn, caplog):
    conn = secret_conn
    caplog.set_level(logging.DEBUG, logger="redtick")
    sessions = UserSessionCache(conn=conn, clock=lambda: 4_000_000_000.0)
    session_ids = [await sessions.set_user_session("alice", {"note": VALUE_MARK}, ttl=600) for _ in range(2)]
    assert (await sessions.get_session_by_id(session_ids[0]))["data"] == {"note": VALUE_MARK}
    assert await sessions.resolve_session(session_ids[1]) == "alice"
    assert len(await sessions.get_user_sessions("alice")) == 2
    assert await sessions.update_session_activity("alice", session_ids[0], {"did": VALUE_MARK})
    await sessions.set_user_preferences("alice", {"secret": VALUE_MARK})
    assert await sessions.delete_session("alice", session_ids[1])
    await sessions.cleanup_expired_sessions()
    vault = EncryptedCache("vault", conn=conn)
    await vault.set("k", {"v": VALUE_MARK})
    assert await vault.get("k") == {"v": VALUE_MARK}
    market = MarketDataCache(conn=conn)
    await market.set_symbol_price("BTCUSDT", {"price": 1.0, "note": VALUE_MARK})
    conn.sync.set(conn.keys.key("plain"), VALUE_MARK)
    conn.sync.mset({conn.keys.key("m1"): VALUE_MARK, conn.keys.key("m2"): VALUE_MARK})
    with pytest.raises(Exception):  # noqa: B017 - whatever the server says, its arguments stay out of the log
        conn.sync.execute_command("AUTH", "default", PASSWORD + "-wrong")

    records = caplog.records
    command_lines = [r.getMessage() for r in records if r.name == "redtick.commands"]
    assert any(line.startswith("HGETALL " + conn.keys.prefix + "session:{#") for line in command_lines)
    assert any(line.startswith("MULTI of ") for line in command_lines)
    assert any(line.startswith("AUTH ") and "failed" in line for line in command_lines)
    assert any(line.startswith("MSET ") and conn.keys.key("m1") in line for line in command_lines)
    secrets_shown = [PASSWORD, FERNET_KEY, VALUE_MARK, *session_ids]
    for record in records:
        text = _every_text(record)
        for secret in secrets_shown:
            assert secret not in text, (record.name, record.getMessage())
    exposition = conn.metrics.exposition().decode()
    for secret in secrets_shown:
        assert secret not in exposition


@pytest.mark.single_node("expects one DEL line; on a cluster redis-py splits a multi-key DEL per slot into a pipeline")
def test_each_line_has_name_keys_and_duration(conn, caplog):
    caplog.set_level(logging.DEBUG, logger="redtick.commands")
    key = conn.keys.key("logged")
    conn.sync.set(key, b"value")
    conn.sync.delete(*(conn.keys.key(f"d{i}") for i in range(5)))
    lines = [r.getMessage() for r in caplog.records if r.name == "redtick.commands"]
    assert lines[0].startswith(f"SET {key} ") and lines[0].endswith(" ms")
    assert f"DEL {conn.keys.key('d0')} " in lines[-1] and "(+2 keys)" in lines[-1]


def test_off_by_default_and_nothing_formatted_when_off(conn, caplog, monkeypatch):
    assert not logging.getLogger("redtick.commands").isEnabledFor(logging.DEBUG)

    def refuse(*args):
        raise AssertionError("a command line was formatted while DEBUG was off")

    monkeypatch.setattr(Metrics, "_shown", refuse)
    monkeypatch.setattr(Metrics, "_listed", refuse)
    caplog.set_level(logging.INFO, logger="redtick")
    conn.sync.set(conn.keys.key("quiet"), b"1")
    with conn.sync.pipeline() as pipe:
        pipe.get(conn.keys.key("quiet"))
        pipe.execute()
    assert [r for r in caplog.records if r.name == "redtick.commands"] == []
