"""The per-process objects the views use, created once per app and shared by requests."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis
from flask import Flask, current_app

from cacheservice.access import AccessControl
from cacheservice.cache import Cache
from cacheservice.config import Settings
from cacheservice.db import Database, load_queries
from cacheservice.limits import RateLimiter
from cacheservice.metrics.recorder import AggregatingMetrics
from cacheservice.store.connection import connect
from cacheservice.store.entries import EntryStore
from cacheservice.store.invalidation import Invalidator
from cacheservice.store.keys import KeySpace
from cacheservice.store.pending import PendingStore

EXTENSION_NAME = "cacheservice"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    keyspace: KeySpace
    cache: Cache
    access: AccessControl
    metrics: AggregatingMetrics
    pending: PendingStore
    database: Database
    queries: dict[str, str]
    started_at: float

    @classmethod
    def build(cls, settings: Settings) -> Services:
        # redis-py opens connections lazily and its pool notices a fork, and the Postgres pool
        # opens on first use in each process: building them here is safe before gunicorn forks.
        client = connect(settings)
        keyspace = KeySpace(settings.namespace_buckets)
        pending = PendingStore(client, keyspace)
        metrics = AggregatingMetrics(pending)
        cache = Cache(
            settings, EntryStore(client, keyspace), Invalidator(client, keyspace), metrics
        )
        access = AccessControl.build(settings, RateLimiter.build(settings, client))
        return cls(
            settings=settings,
            redis=client,
            keyspace=keyspace,
            cache=cache,
            access=access,
            metrics=metrics,
            pending=pending,
            database=Database(settings),
            queries=load_queries(),
            started_at=time.time(),
        )

    def shutdown(self) -> None:
        """Flush what the process still holds: metric deltas, then the Postgres pool."""
        try:
            self.metrics.push()
        except Exception:  # Shutting down: log and go on closing.
            log.exception("final metrics push failed")
        self.database.close()

    @classmethod
    def init_app(cls, app: Flask, settings: Settings) -> Services:
        services = cls.build(settings)
        app.extensions[EXTENSION_NAME] = services
        return services


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION_NAME]
    return found


def cache() -> Cache:
    return services().cache
