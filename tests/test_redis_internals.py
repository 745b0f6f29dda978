"""Every redis-py internal that redtick.redis_internals relies on still exists, in the installed redis-py.

An upgrade of redis-py that renames or moves one of them fails here, naming the internal and the
version, rather than silently leaving pipelines unmeasured or the local store not restarted.
"""

from __future__ import annotations

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.connection
import redis.cluster
import redis.connection

from redtick.redis_internals import adopt, needs_discovery, pipeline_kind, queued_commands, starting_unix_connection

VERSION = redis.__version__


class _Marker:
    """A mixin with nothing in it: what adopt() puts in front of a pipeline's class."""


def _needs(thing: object, attribute: str, why: str) -> object:
    """``thing.attribute``, or a failure naming the internal, redis-py's version and what redtick uses it for."""
    owner = thing if isinstance(thing, type) else type(thing)
    assert hasattr(thing, attribute), (
        f"redis-py {VERSION}: {owner.__module__}.{owner.__qualname__} has no `{attribute}` any more; "
        f"redtick.redis_internals relies on it for {why}. Update redtick/redis_internals.py for this redis-py, "
        f"or keep redis below this version in pyproject.toml"
    )
    return getattr(thing, attribute)


def _async_cluster() -> redis.asyncio.RedisCluster:
    return redis.asyncio.RedisCluster(host="127.0.0.1", port=7000)  # connects on first command, not here


# (name, a pipeline with SET and GET queued, its transaction flag, the kind it is)
SINGLE_PIPELINES = [
    ("sync", lambda: redis.Redis().pipeline(), "transaction", "MULTI"),
    ("sync, no MULTI", lambda: redis.Redis().pipeline(transaction=False), "transaction", "PIPELINE"),
    ("asyncio", lambda: redis.asyncio.Redis().pipeline(), "is_transaction", "MULTI"),
    ("asyncio, no MULTI", lambda: redis.asyncio.Redis().pipeline(transaction=False), "is_transaction", "PIPELINE"),
    ("fakeredis", lambda: fakeredis.FakeRedis().pipeline(), "transaction", "MULTI"),
    ("fakeredis asyncio", lambda: fakeredis.FakeAsyncRedis().pipeline(), "is_transaction", "MULTI"),
]


@pytest.mark.parametrize(("make", "flag", "kind"), [case[1:] for case in SINGLE_PIPELINES],
                         ids=[case[0] for case in SINGLE_PIPELINES])
def test_single_server_pipelines_keep_their_commands_and_transaction_flags(make, flag, kind):
    pipe = make()
    _needs(pipe, "command_stack", "the commands a pipeline sends (metrics count them)")
    _needs(pipe, flag, "whether a pipeline is a MULTI (metrics label it)")
    _needs(pipe, "explicit_transaction", "a pipeline turned into a MULTI by pipe.multi()")
    pipe.set("a", 1)
    pipe.get("a")
    assert len(queued_commands(pipe)) == 2
    assert pipeline_kind(pipe) == kind
    assert type(adopt(pipe, _Marker)).__mro__[1:3] == (_Marker, type(make()))  # __class__ can be set


def test_a_pipeline_turned_into_a_multi_is_one():
    pipe = redis.Redis().pipeline(transaction=False)
    pipe.multi()
    assert pipeline_kind(pipe) == "MULTI"


async def test_the_asyncio_cluster_pipeline_keeps_its_commands_and_transaction_flag():
    client = _async_cluster()
    pipe = client.pipeline()
    strategy = _needs(pipe, "_execution_strategy", "the commands a cluster pipeline sends (metrics count them)")
    _needs(strategy, "_command_queue", "the commands a cluster pipeline sends (metrics count them)")
    _needs(pipe, "_transaction", "whether a cluster pipeline is a MULTI (metrics label it)")
    pipe.set("a", 1)
    pipe.get("a")
    assert len(queued_commands(pipe)) == 2
    assert pipeline_kind(pipe) == "PIPELINE" and pipeline_kind(client.pipeline(transaction=True)) == "MULTI"
    assert type(adopt(pipe, _Marker)).__mro__[1] is _Marker  # __class__ can be set despite redis-py's __slots__


async def test_the_asyncio_cluster_client_says_when_it_must_discover_the_nodes():
    client = _async_cluster()
    _needs(client, "_initialize", "one command discovering the cluster's nodes while the others wait")
    _needs(client, "initialize", "discovering the cluster's nodes")
    assert needs_discovery(client) is True


def test_the_sync_cluster_pipeline_keeps_its_commands(cluster_redis_url):
    client = redis.cluster.RedisCluster.from_url(cluster_redis_url.replace("redis+cluster://", "redis://").split(",")[0])
    try:
        pipe = client.pipeline()
        strategy = _needs(pipe, "_execution_strategy", "the commands a cluster pipeline sends (metrics count them)")
        _needs(strategy, "_command_queue", "the commands a cluster pipeline sends (metrics count them)")
        pipe.set("a", 1)
        pipe.get("a")
        assert len(queued_commands(pipe)) == 2
        assert type(adopt(pipe, _Marker)).__mro__[1] is _Marker
    finally:
        client.close()


@pytest.mark.parametrize("base", [redis.connection.UnixDomainSocketConnection,
                                  redis.asyncio.connection.UnixDomainSocketConnection], ids=["sync", "asyncio"])
def test_unix_socket_connections_connect_through_one_overridable_step(base):
    _needs(base, "_connect", "starting the local store's server when nothing answers its socket")
    made = starting_unix_connection(lambda: None, asynchronous=base is redis.asyncio.connection.UnixDomainSocketConnection)
    assert issubclass(made, base) and made._connect is not base._connect
