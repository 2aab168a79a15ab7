"""The Redis client, configured so that a dead Redis fails fast instead of hanging."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cacheservice.config import Settings


def connect(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client over a blocking pool with pinned timeouts and no automatic retries.

    redis-py retries failed commands three times by default; a retried HINCRBY could count a
    hit twice, and the retries stretch a Redis outage into multi-second hangs. The service
    answers 503 instead and the client reconnects on the next request.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url or settings.redis_url,
        max_connections=settings.redis_max_connections,
        # How long a request may wait for a free pooled connection before it is a 503.
        timeout=settings.redis_connect_timeout,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
        socket_keepalive=True,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )
    return redis.Redis(connection_pool=pool)
