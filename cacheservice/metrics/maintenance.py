"""The periodic jobs besides the flush: pruning, the health probe, memory sampling.

Plain functions taking their dependencies; ``workers/tasks.py`` wraps them as Celery tasks.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import deque

import redis

from cacheservice.db import Database
from cacheservice.metrics.health import HealthSources, health_report, record_probe
from cacheservice.store.keys import MEMORY_SAMPLES, KeySpace
from cacheservice.store.pending import PendingStore
from cacheservice.store.pruning import prune_namespace

log = logging.getLogger(__name__)

EXPIRED_ROWS_PER_RUN = 10_000
SAMPLED_BUCKETS = 4
SAMPLED_KEYS_PER_BUCKET = 16
# A sorted-set membership costs about its member plus this much (skiplist node, dict entry).
INDEX_MEMBERSHIP_OVERHEAD = 48


def prune_everything(
    client: redis.Redis,
    keyspace: KeySpace,
    pending: PendingStore,
    database: Database,
    queries: dict[str, str],
) -> int:
    """Cut expired index members in every namespace; drop rows of expired entries."""
    removed = sum(prune_namespace(client, keyspace, ns) for ns in pending.namespaces())
    with database.connection() as conn:
        conn.execute(queries["delete_expired_entries"], {"limit": EXPIRED_ROWS_PER_RUN})
        conn.execute(queries["delete_old_flush_batches"])
    return removed


# Probes that failed while Redis was unreachable, recorded once it is back (at most a day).
_unrecorded_failures: deque[float] = deque(maxlen=24 * 3600)


def probe(sources: HealthSources) -> str:
    """Run the health check once and count it towards the uptime figure."""
    status_code, body = health_report(sources)
    now = time.time()
    ok = status_code == 200
    try:
        while _unrecorded_failures:
            record_probe(sources.client, False, _unrecorded_failures[0])
            _unrecorded_failures.popleft()
        record_probe(sources.client, ok, now)
    except redis.RedisError:
        _unrecorded_failures.append(now)
    return str(body["status"])


def sample_memory(
    client: redis.Redis, keyspace: KeySpace, pending: PendingStore, now_ms: int
) -> None:
    """Estimate memory per entry of each namespace from a random sample of its entries."""
    for namespace in pending.namespaces():
        buckets = random.sample(
            keyspace.all_buckets(namespace), min(SAMPLED_BUCKETS, keyspace.buckets)
        )
        keys: list[tuple[str, str]] = []
        for bucket in buckets:
            for member in client.zrandmember(bucket.index, SAMPLED_KEYS_PER_BUCKET) or []:
                key = member.decode() if isinstance(member, bytes) else str(member)
                keys.append((bucket.entry(key), key))
        if not keys:
            continue
        pipe = client.pipeline(transaction=False)
        for entry, _ in keys:
            pipe.memory_usage(entry, samples=0)
            pipe.hget(entry, "tg")
        replies = pipe.execute()
        sizes: list[float] = []
        for index, (_, key) in enumerate(keys):
            usage, tags = replies[2 * index], replies[2 * index + 1]
            if usage is None:
                continue  # Expired since it was picked.
            memberships = 1 + (len(tags.split(b"\n")) if tags else 0)
            sizes.append(usage + memberships * (len(key.encode()) + INDEX_MEMBERSHIP_OVERHEAD))
        if sizes:
            sample = {"bytes_per_entry": sum(sizes) / len(sizes), "sampled_at": now_ms}
            client.hset(MEMORY_SAMPLES, namespace, json.dumps(sample))
