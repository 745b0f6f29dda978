"""BaseCache: TTLs, batches in one round trip, JSON, hooks, encryption, SCAN counting."""

import pytest
from cryptography.fernet import Fernet

from redtick.caches.base import BaseCache, EncryptedCache
from redtick.errors import ConfigurationError, InvalidData, InvalidKey


async def test_set_get_delete_exists(conn):
    cache = BaseCache("things", default_ttl=60, conn=conn)
    assert await cache.get("a") is None
    assert await cache.get("a", default=7) == 7
    await cache.set("a", {"price": 1.5, "tags": ["x"]})
    assert await cache.get("a") == {"price": 1.5, "tags": ["x"]}
    assert await cache.exists("a")
    assert await cache.delete("a", "b") == 1
    assert not await cache.exists("a")


async def test_default_and_per_call_ttl(conn):
    cache = BaseCache("ttl", default_ttl=100, conn=conn)
    await cache.set("default", 1)
    await cache.set("custom", 1, ttl=5)
    assert 90 <= await cache.ttl("default") <= 100
    assert 1 <= await cache.ttl("custom") <= 5
    forever = BaseCache("forever", default_ttl=None, conn=conn)
    await forever.set("k", 1)
    assert await forever.ttl("k") == -1


@pytest.mark.parametrize("ttl", [0, -5, float("nan"), "60", True])
async def test_bad_ttl_raises_before_writing(conn, ttl):
    cache = BaseCache("badttl", conn=conn)
    with pytest.raises(InvalidData, match="ttl"):
        await cache.set("k", 1, ttl=ttl)
    assert not await cache.exists("k")


def round_trips(conn) -> dict[str, int]:
    """Round trips so far by what they were (a command's name, or MULTI/PIPELINE for a batch)."""
    return {sample.labels["command"]: int(sample.value) for metric in conn.metrics.round_trips.collect()
            for sample in metric.samples if sample.name.endswith("_count") and sample.value}


def trips_of(conn, before: dict[str, int]) -> dict[str, int]:
    after = round_trips(conn)
    return {name: count - before.get(name, 0) for name, count in after.items() if count != before.get(name, 0)}


@pytest.mark.single_node("counts one MGET; on a cluster redis-py splits it per slot (tests/test_cluster.py)")
async def test_batch_get_and_set_are_one_round_trip(conn):
    cache = BaseCache("batch", default_ttl=60, conn=conn)
    items = {f"k{i}": {"i": i} for i in range(50)}
    before = round_trips(conn)
    assert await cache.set_many(items, ttl=30) == 50
    assert trips_of(conn, before) == {"MULTI": 1}
    before = round_trips(conn)
    got = await cache.get_many([*items, "missing"])
    assert trips_of(conn, before) == {"MGET": 1}
    assert got == items
    assert 1 <= await cache.ttl("k7") <= 30


async def test_set_many_encodes_everything_before_sending(conn):
    cache = BaseCache("atomic", conn=conn)
    with pytest.raises(InvalidData):
        await cache.set_many({"good": 1, "bad": object()})
    assert await cache.count_keys() == 0


async def test_bad_key_part_raises_before_sending(conn):
    cache = BaseCache("keys", conn=conn)
    with pytest.raises(InvalidKey):
        await cache.set("has space", 1)
    with pytest.raises(InvalidKey):
        await cache.get("glob*")


async def test_count_keys_sees_only_its_own_prefix(conn):
    mine, other = BaseCache("mine", conn=conn), BaseCache("mine2", conn=conn)
    await mine.set_many({f"k{i}": i for i in range(30)})
    await other.set("x", 1)
    conn.sync.set("outside-namespace", b"1")
    try:
        assert await mine.count_keys() == 30
        assert await mine.clear() == 30
        assert await other.count_keys() == 1
        assert conn.sync.get("outside-namespace") == b"1"
    finally:
        conn.sync.delete("outside-namespace")


class UpperCache(BaseCache):
    def _serialize(self, value):
        return super()._serialize(value).upper()

    def _deserialize(self, value):
        return super()._deserialize(value.lower())


async def test_serialise_hooks_are_used(conn):
    cache = UpperCache("upper", conn=conn)
    await cache.set("k", {"a": "b"})
    assert conn.sync.get(cache._key("k")) == b'{"A":"B"}'
    assert await cache.get("k") == {"a": "b"}


async def test_encrypted_cache_round_trip_and_ciphertext_at_rest(conn):
    key = Fernet.generate_key()
    cache = EncryptedCache("secret", conn=conn, encryption_key=key)
    await cache.set("pii", {"email": "trader@example.com"})
    raw = conn.sync.get(cache._key("pii"))
    assert b"trader@example.com" not in raw
    assert await cache.get("pii") == {"email": "trader@example.com"}
    wrong = EncryptedCache("secret", conn=conn, encryption_key=Fernet.generate_key())
    with pytest.raises(InvalidData, match="decrypted"):
        await wrong.get("pii")


def test_encrypted_cache_needs_a_key(conn):
    with pytest.raises(ConfigurationError, match="REDTICK_ENCRYPTION_KEY"):
        EncryptedCache("secret", conn=conn)


async def test_spec_style_encrypted_subclass(conn):
    """The platform doc's EncryptedCache recipe works as written against BaseCache's hooks."""
    from cryptography.fernet import Fernet as FernetKey

    class SpecEncryptedCache(BaseCache):
        def __init__(self, encryption_key: bytes, conn):
            super().__init__("spec-secret", conn=conn)
            self.fernet = FernetKey(encryption_key)

        def _serialize(self, value):
            json_str = super()._serialize(value)
            return self.fernet.encrypt(json_str.encode()).decode()

        def _deserialize(self, value):
            return super()._deserialize(self.fernet.decrypt(value.encode()).decode())

    cache = SpecEncryptedCache(FernetKey.generate_key(), conn)
    await cache.set("k", {"v": 1})
    assert await cache.get("k") == {"v": 1}
