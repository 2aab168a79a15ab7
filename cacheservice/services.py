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
from cacheservice.namespaces.config import NamespaceConfig
from cacheservice.namespaces.registry import NamespaceRegistry
from cacheservice.sessions import Sessions
from cacheservice.store.connection import connect, disconnect
from cacheservice.store.entries import EntryStore
from cacheservice.store.invalidation import Invalidator
from cacheservice.store.keys import KeySpace
from cacheservice.store.pending import PendingStore
from cacheservice.store.sessions import SessionStore

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
    namespaces: NamespaceRegistry
    sessions: Sessions
    started_at: float

    @classmethod
    def build(cls, settings: Settings) -> Services:
        # redis-py opens connections lazily and its pool notices a fork, and the Postgres pool
        # opens on first use in each process: building them here is safe before gunicorn forks.
        client = connect(settings)
        keyspace = KeySpace(settings.namespace_buckets)
        pending = PendingStore(client, keyspace)
        metrics = AggregatingMetrics(pending)
        database = Database(settings)
        queries = load_queries()
        namespaces = NamespaceRegistry(
            database,
            queries,
            NamespaceConfig(
                default_ttl=settings.default_ttl, max_value_bytes=settings.max_value_bytes
            ),
        )
        cache = Cache(
            settings,
            EntryStore(client, keyspace),
            Invalidator(client, keyspace),
            namespaces,
            metrics,
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
            database=database,
            queries=queries,
            namespaces=namespaces,
            sessions=Sessions(SessionStore(client), database, queries),
            started_at=time.time(),
        )

    @property
    def keyring_available(self) -> bool:
        """Whether values can be encrypted here (``CACHE_ENCRYPTION_KEYS`` holds a key)."""
        return len(self.cache.keyring) > 0

    def shutdown(self) -> None:
        """Flush what the process still holds: metric deltas, then the Postgres pool."""
        self.namespaces.stopped = True
        try:
            self.metrics.push()
        except Exception:  # Shutting down: log and go on closing.
            log.exception("final metrics push failed")
        self.metrics.stopped = True
        self.database.close()
        disconnect(self.redis)

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
