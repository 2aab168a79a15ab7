"""The Redis topologies the integration and e2e suites run on: one server, a Redis Cluster, or
a master found through Sentinel.

The suites run once per topology (``pytest --redis-topology cluster``; CI runs single and
cluster). On the cluster run, each xdist worker starts private three-master clusters (no
replicas: failover has its own tests in ``test_cluster.py``); on the sentinel run, a private
master, replica and sentinel. The service connects with a ``redis+cluster://`` or
``redis+sentinel://`` URL, exactly as a deployment would.

Tests inspect Redis through :func:`raw_client`. On a cluster, commands that look at the whole
keyspace (``KEYS``, ``DBSIZE``, ``FLUSHDB``) reach one node by default in redis-py; the test
client sends them to every master, so an assertion means the same on both topologies.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.sentinel import Sentinel

from cacheservice.store.connection import CLUSTER_SCHEME, SENTINEL_SCHEME

SINGLE = "single"
CLUSTER = "cluster"
SENTINEL = "sentinel"
TOPOLOGIES = (SINGLE, CLUSTER, SENTINEL)


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
    if parts.scheme == SENTINEL_SCHEME:
        service, db = parts.path.strip("/").split("/")
        addresses = [address.rpartition(":") for address in parts.netloc.split(",")]
        sentinel = Sentinel([(host, int(port)) for host, _, port in addresses], socket_timeout=5)
        master: redis.Redis = sentinel.master_for(service, db=int(db), socket_timeout=5)
        return master
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
