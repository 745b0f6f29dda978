"""RedisClient: the platform's calls, str replies, JSON helpers."""

from redtick.client import RedisClient


async def test_spec_calls(conn):
    client = RedisClient(conn)
    assert await client.connect()
    k = conn.keys.key("client")
    await client.set(k, "value", ex=300)
    assert await client.get(k) == "value"
    assert 0 < await client.ttl(k) <= 300
    assert await client.exists(k) == 1
    data = {"price": 50000, "volume": 1000}
    await client.set(k + ":json", client.get_json(data))
    assert client.parse_json(await client.get(k + ":json")) == data
    await client.hset(k + ":user", "name", "John")
    assert await client.hget(k + ":user", "name") == "John"
    assert await client.hgetall(k + ":user") == {"name": "John"}
    await client.rpush(k + ":list", "a", "b")
    assert await client.lrange(k + ":list") == ["a", "b"]
    await client.sadd(k + ":set", "x")
    assert await client.smembers(k + ":set") == {"x"}
    await client.zadd(k + ":z", {"m": 1.0})
    assert await client.zrange(k + ":z", withscores=True) == [("m", 1.0)]
    assert sorted([key async for key in client.scan(match=k + "*")]) == sorted(
        [k, k + ":json", k + ":user", k + ":list", k + ":set", k + ":z"])
    assert await client.delete(k) == 1
    assert await client.incr(k + ":n") == 1  # any redis-py command by attribute
    async with client.pipeline() as pipe:
        pipe.set(k + ":p", "1").get(k + ":p")
        assert await pipe.execute() == [True, "1"]
    await client.disconnect()


async def test_json_helpers(conn):
    client = RedisClient(conn)
    k = conn.keys.key("j")
    await client.set_json(k, {"a": [1, 2]}, ex=10)
    assert await client.get_json_value(k) == {"a": [1, 2]}
    assert await client.get_json_value(k + "missing") is None
    await client.disconnect()
