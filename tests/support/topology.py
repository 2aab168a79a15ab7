"""The Redis topologies the integration and e2e suites run on: one server, or a Redis Cluster.

The suites run once per topology (``pytest --redis-topology cluster``, CI runs both). On the
cluster run, each xdist worker starts private three-master clusters (no replicas: failover has
its own tests in ``test_cluster.py``) and the service connects with a ``redis+cluster://`` URL,
exactly as a deployment would.

Tests inspect Redis through :func:`raw_client`. On a cluster, commands that look at the whole
keyspace (``KEYS``, ``DBSIZE``, ``FLUSHDB``) reach one node by default in redis-py; the test
client sends them to every master, so an assertion means the same on both topologies.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster

from cacheservice.store.connection import CLUSTER_SCHEME

SINGLE = "single"
CLUSTER = "cluster"
TOPOLOGIES = (SINGLE, CLUSTER)


class WholeClusterClient(RedisCluster):
    """A cluster client whose keyspace-wide commands cover every master, as on one server."""

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        return super().keys(pattern, target_nodes=self.PRIMARIES, **kwargs)

    def dbsize(self, **kwargs: Any) -> Any:
        return super().dbsize(target_nodes=self.PRIMARIES, **kwargs)

    def flushdb(self, asynchronous: bool = False, **kwargs: Any) -> Any:
        return super().flushall(asynchronous, target_nodes=self.PRIMARIES, **kwargs)

    def mget(self, keys: Any, *args: Any) -> Any:
        # Keys of different buckets live in different slots: one MGET per slot, in key order.
        return self.mget_nonatomic(keys, *args)


def raw_client(url: str) -> redis.Redis:
    """A plain client for inspecting what the service stored at ``url`` (either topology)."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        return redis.Redis.from_url(url)
    nodes: list[Any] = []
    for address in parts.netloc.split(","):
        host, _, port = address.rpartition(":")
        nodes.append(ClusterNode(host, int(port)))
    # Duck-typed like the service's own cluster client (cacheservice.store.connection).
    return cast(redis.Redis, WholeClusterClient(startup_nodes=nodes, socket_timeout=5))


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme == CLUSTER_SCHEME
