"""What the tasks work with, built once per worker process (after Celery forks it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import redis

from cacheservice.config import Settings
from cacheservice.db import Database, load_queries
from cacheservice.metrics.health import HealthSources
from cacheservice.store.connection import connect
from cacheservice.store.keys import KeySpace
from cacheservice.store.pending import PendingStore


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    redis: redis.Redis
    keyspace: KeySpace
    pending: PendingStore
    database: Database
    queries: dict[str, str]
    started_at: float

    @classmethod
    def build(cls, settings: Settings) -> WorkerContext:
        client = connect(settings)
        keyspace = KeySpace(settings.namespace_buckets)
        return cls(
            settings=settings,
            redis=client,
            keyspace=keyspace,
            pending=PendingStore(client, keyspace),
            database=Database(settings),
            queries=load_queries(),
            started_at=time.time(),
        )

    def health_sources(self) -> HealthSources:
        return HealthSources.of(self)


_context: WorkerContext | None = None
_context_pid = 0


def context() -> WorkerContext:
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        _context, _context_pid = WorkerContext.build(Settings.from_env()), os.getpid()
    return _context
