"""``INFO`` from every master of the topology, combined into one server's worth of figures.

On a single server (or the master Sentinel points at) that is its own ``INFO``. On a cluster,
redis-py sends ``INFO`` to one node; health must see them all: memory and clients are summed over
the masters, and each master's own figures are listed so an operator sees which node is full or
unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from cacheservice.store.connection import is_cluster

# Figures that add up across masters (each node has its own memory use, clients and limits).
SUMMED = ("used_memory", "connected_clients", "maxclients")


def memory_limit(info: dict[str, Any]) -> int:
    """What a node may use: its maxmemory, or its machine's memory when none is set."""
    return int(info.get("maxmemory") or 0) or int(info.get("total_system_memory") or 0)


@dataclass(frozen=True)
class NodeInfo:
    address: str
    info: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    """The combined figures (None when no master answered) and each master's own."""

    combined: dict[str, Any] | None
    nodes: list[NodeInfo] = field(default_factory=list)

    @property
    def all_answered(self) -> bool:
        return self.combined is not None and all(node.info is not None for node in self.nodes)


def combine(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """One server's INFO as it is; several masters' summed, with ``fullest_node_share`` (the
    largest used/limit of any node, None when no node has a limit) added either way."""
    combined: dict[str, Any] = dict(infos[0])
    for name in SUMMED:
        combined[name] = sum(int(info.get(name) or 0) for info in infos)
    # Each node's own limit, summed (the machine's memory counted once per node that has no
    # maxmemory), and the fullest node's share: that node refuses writes first.
    combined["maxmemory"] = sum(memory_limit(info) for info in infos)
    shares = [
        int(info.get("used_memory") or 0) / memory_limit(info)
        for info in infos
        if memory_limit(info)
    ]
    combined["fullest_node_share"] = max(shares, default=None)
    policies = sorted({str(info.get("maxmemory_policy")) for info in infos})
    # Differing policies are shown side by side, so a node that may evict is not hidden.
    combined["maxmemory_policy"] = ",".join(policies)
    return combined


def server_info(client: redis.Redis) -> ServerInfo:
    """Raises redis.RedisError when a single server does not answer."""
    if not is_cluster(client):
        return ServerInfo(combine([client.info()]))
    cluster = cast(RedisCluster, client)
    nodes: list[NodeInfo] = []
    for node in cluster.get_primaries():  # type: ignore[no-untyped-call]  # untyped in redis-py
        try:
            info: dict[str, Any] = cluster.info(target_nodes=node)
        except (redis.RedisError, RedisClusterException) as error:
            nodes.append(NodeInfo(node.name, None, str(error)[:200]))
        else:
            nodes.append(NodeInfo(node.name, info))
    answered = [node.info for node in nodes if node.info is not None]
    return ServerInfo(combine(answered) if answered else None, nodes)
