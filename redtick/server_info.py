"""What a Redis Cluster's masters report, merged into one ``INFO`` as a single server gives it."""

from __future__ import annotations

from typing import Any

__all__ = ["KEYSPACE_FIELDS", "merge_node_info"]

KEYSPACE_FIELDS = {"hits": "keyspace_hits", "misses": "keyspace_misses", "expired_keys": "expired_keys",
                   "evicted_keys": "evicted_keys"}
"""The keyspace counters the cache service reports, by the name it reports them under."""


def merge_node_info(per_node: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One INFO for a Redis Cluster from its masters' (``{node name: INFO}``).

    Memory, clients and keyspace counters are summed; ``maxmemory`` is the sum when every
    master has one, else 0 (no limit); ``fullest_master_percent`` is the highest share of
    ``maxmemory`` any master uses, since one full master refuses writes whatever the others
    hold. Version and other facts come from the first master.
    """
    infos = [per_node[name] for name in sorted(per_node)]
    merged = dict(infos[0])
    for field in ("used_memory", "connected_clients", *KEYSPACE_FIELDS.values()):
        merged[field] = sum(int(info.get(field, 0)) for info in infos)
    limits = [int(info.get("maxmemory", 0)) for info in infos]
    merged["maxmemory"] = sum(limits) if all(limits) else 0
    merged["used_memory_human"] = f"{merged['used_memory'] / 2**20:.2f}M"
    merged["uptime_in_seconds"] = min(int(info.get("uptime_in_seconds", 0)) for info in infos)
    merged["cluster_masters"] = len(infos)
    shares = [100.0 * int(info.get("used_memory", 0)) / limit for info, limit in zip(infos, limits, strict=True) if limit]
    merged["fullest_master_percent"] = round(max(shares), 2) if shares else None
    return merged
