"""The Redis client, configured so that a dead Redis fails fast instead of hanging.

``CACHE_REDIS_URL`` names one of three topologies:

- ``redis://host:port/db`` (or ``rediss://``): a single server;
- ``redis+cluster://host:port,host:port``: a Redis Cluster, found from any of its nodes;
- ``redis+sentinel://host:port,host:port/service_name``: the master Sentinel points at,
  followed across failovers.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from cacheservice.config import ConfigError, Settings

CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"


def _nodes(netloc: str, scheme: str) -> list[tuple[str, int]]:
    hosts = netloc.rsplit("@", 1)[-1]
    nodes: list[tuple[str, int]] = []
    for part in hosts.split(","):
        host, _, port = part.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"{scheme} URL needs host:port pairs, got {part!r}")
        nodes.append((host.strip("[]"), int(port)))
    return nodes


def _password(netloc: str) -> str | None:
    if "@" not in netloc:
        return None
    credentials = netloc.rsplit("@", 1)[0]
    return unquote(credentials.split(":", 1)[-1]) or None


def _socket_options(settings: Settings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_socket_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "socket_keepalive": True,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


def connect(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client with pinned timeouts and no automatic retries of commands.

    redis-py retries failed commands three times by default; a retried HINCRBY could count a
    hit twice, and the retries stretch a Redis outage into multi-second hangs. The service
    answers 503 instead and the client reconnects (and, on a cluster, re-reads the slot map)
    on the next request.
    """
    url = url or settings.redis_url
    parts = urlsplit(url)
    if parts.scheme == CLUSTER_SCHEME:
        nodes = [ClusterNode(host, port) for host, port in _nodes(parts.netloc, parts.scheme)]
        cluster = RedisCluster(
            startup_nodes=nodes,
            password=_password(parts.netloc),
            max_connections=settings.redis_max_connections,
            **_socket_options(settings),
        )
        # Duck-typed: the cluster client offers the commands the store uses. Code that must
        # behave differently asks is_cluster().
        return cast(redis.Redis, cluster)
    if parts.scheme == SENTINEL_SCHEME:
        path = [segment for segment in parts.path.split("/") if segment]
        if not path:
            raise ConfigError("redis+sentinel URL needs the service name: .../mymaster[/db]")
        sentinel = Sentinel(
            _nodes(parts.netloc, parts.scheme),
            sentinel_kwargs={"socket_timeout": settings.redis_socket_timeout},
            password=_password(parts.netloc),
            db=int(path[1]) if len(path) > 1 else 0,
            **_socket_options(settings),
        )
        master: redis.Redis = sentinel.master_for(path[0])
        return master
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        # How long a request may wait for a free pooled connection before it is a 503.
        timeout=settings.redis_connect_timeout,
        **_socket_options(settings),
    )
    return redis.Redis(connection_pool=pool)


def is_cluster(client: redis.Redis) -> bool:
    return isinstance(client, RedisCluster)


def disconnect(client: redis.Redis) -> None:
    """Close every pooled connection (a cluster client has one pool per node)."""
    if is_cluster(client):
        client.close()
    else:
        client.connection_pool.disconnect()
