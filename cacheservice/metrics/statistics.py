"""``GET /cache/statistics``: exact counts from Postgres plus what Redis holds unflushed.

Counting each figure exactly once while the flush runs concurrently: the Postgres totals and
the list of applied batch ids come from one REPEATABLE READ snapshot; Redis is read after that
snapshot was taken, atomically (pending deltas, the batch in flight and batches applied in the
last minute). A Redis batch is added only if its id is not applied as of the snapshot, so a
batch applied in between is counted from Redis, and one applied before from Postgres.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis

from cacheservice.db import Database
from cacheservice.metrics import histogram
from cacheservice.metrics.flush import parse_metric_field
from cacheservice.metrics.recorder import SERVICE
from cacheservice.store.keys import MEMORY_SAMPLES, KeySpace
from cacheservice.store.pending import PendingStore
from cacheservice.timefmt import format_ms

DEFAULT_WINDOW = timedelta(hours=24)
MIB = 1024 * 1024

# {namespace: {metric: value}}
Totals = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Window:
    date_from: datetime
    date_to: datetime

    @classmethod
    def ending_now(cls, date_from: datetime | None, date_to: datetime | None) -> Window:
        end = date_to or datetime.now(UTC)
        return cls(date_from or end - DEFAULT_WINDOW, end)

    def holds_minute(self, minute: datetime) -> bool:
        # A sample covers its whole minute: it counts if the minute overlaps the window.
        return self.date_from - timedelta(minutes=1) < minute <= self.date_to


def _add(totals: Totals, samples: Mapping[str, float], window: Window) -> None:
    for field, value in samples.items():
        namespace, minute, metric = parse_metric_field(field)
        if window.holds_minute(minute):
            totals[namespace][metric] += value


def metric_totals(
    pending: PendingStore,
    database: Database,
    queries: dict[str, str],
    window: Window,
    namespace: str | None,
) -> Totals:
    """Every sample in the window, flushed or not, each counted once."""
    totals: Totals = defaultdict(lambda: defaultdict(float))
    params = {
        "date_from": window.date_from - timedelta(minutes=1),
        "date_to": window.date_to,
        "namespace": namespace,
    }
    with database.connection() as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        try:
            with conn.transaction():
                for row_namespace, metric, value in conn.execute(queries["metric_totals"], params):
                    totals[row_namespace][metric] += float(value)
                unflushed, batches = pending.metrics_snapshot()
                applied = {
                    row[0]
                    for row in conn.execute(
                        queries["applied_batches"], {"batch_ids": list(batches)}
                    )
                }
        finally:
            # The connection goes back to the pool: leave it as the pool gave it.
            conn.isolation_level = None
    _add(totals, _only(unflushed, namespace), window)
    for batch_id, samples in batches.items():
        if batch_id not in applied:
            _add(totals, _only(samples, namespace), window)
    return totals


def _only(samples: Mapping[str, float], namespace: str | None) -> Mapping[str, float]:
    if namespace is None:
        return samples
    prefix = f"{namespace}\t"
    return {field: value for field, value in samples.items() if field.startswith(prefix)}


def _ms_text(ms: float | None) -> str | None:
    return None if ms is None else f"{ms:.3g}ms"


def performance(totals: Mapping[str, float]) -> dict[str, Any]:
    """The seed's strings ("1.2ms") with numeric ``*_ms`` twins; None where nothing was timed."""
    figures = {
        "average_get_time": histogram.average("get", totals),
        "average_set_time": histogram.average("set", totals),
        "average_delete_time": histogram.average("delete", totals),
        "p95_get_time": histogram.percentile("get", totals, 0.95),
        "p99_get_time": histogram.percentile("get", totals, 0.99),
    }
    body: dict[str, Any] = {}
    for name, ms in figures.items():
        body[name] = _ms_text(ms)
        body[f"{name}_ms"] = None if ms is None else round(ms, 3)
    return body


def _rates(hits: float, misses: float) -> tuple[float, float]:
    reads = hits + misses
    if reads == 0:
        return 0.0, 0.0
    return round(hits / reads, 4), round(misses / reads, 4)


def _sum(per_namespace: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    combined: dict[str, float] = defaultdict(float)
    for metrics in per_namespace.values():
        for name, value in metrics.items():
            combined[name] += value
    return combined


@dataclass(frozen=True)
class MemorySample:
    bytes_per_entry: float
    sampled_at_ms: int


def memory_samples(client: redis.Redis) -> dict[str, MemorySample]:
    raw = client.hgetall(MEMORY_SAMPLES)
    samples: dict[str, MemorySample] = {}
    for name, value in raw.items():
        decoded = json.loads(value)
        label = name.decode() if isinstance(name, bytes) else name
        samples[label] = MemorySample(decoded["bytes_per_entry"], decoded["sampled_at"])
    return samples


def live_keys(
    client: redis.Redis, keyspace: KeySpace, namespaces: list[str], now_ms: int
) -> dict[str, int]:
    """Exact count of unexpired entries per namespace (ZCOUNT of every bucket's index)."""
    pipe = client.pipeline(transaction=False)
    for namespace in namespaces:
        for bucket in keyspace.all_buckets(namespace):
            pipe.zcount(bucket.index, f"({now_ms}", "+inf")
    counts = pipe.execute()
    per = keyspace.buckets
    return {ns: sum(counts[i * per : (i + 1) * per]) for i, ns in enumerate(namespaces)}


def statistics(
    *,
    client: redis.Redis,
    keyspace: KeySpace,
    pending: PendingStore,
    database: Database,
    queries: dict[str, str],
    window: Window,
    namespace: str | None,
    top: int,
    now_ms: int,
) -> dict[str, Any]:
    totals = metric_totals(pending, database, queries, window, namespace)
    totals.pop(SERVICE, None)
    known = pending.namespaces()
    namespaces = [namespace] if namespace is not None else sorted(set(known) | set(totals))
    keys = live_keys(client, keyspace, namespaces, now_ms)
    memory = memory_samples(client)
    with database.connection() as conn:
        ttl_rows = conn.execute(queries["average_ttl"], {"namespace": namespace}).fetchall()
        top_rows = conn.execute(
            queries["top_keys"], {"namespace": namespace, "top": top}
        ).fetchall()
    average_ttls = {row[0]: float(row[1]) for row in ttl_rows}

    namespace_stats: dict[str, Any] = {}
    sampled_at: list[int] = []
    for name in namespaces:
        metrics = totals.get(name, {})
        hit_rate, miss_rate = _rates(metrics.get("hits", 0), metrics.get("misses", 0))
        sample = memory.get(name)
        memory_mb = None
        if sample is not None:
            memory_mb = round(sample.bytes_per_entry * keys[name] / MIB, 3)
            sampled_at.append(sample.sampled_at_ms)
        namespace_stats[name] = {
            "keys": keys[name],
            "memory_mb": memory_mb,
            "memory_sampled_at": format_ms(sample.sampled_at_ms) if sample else None,
            "hit_rate": hit_rate,
            "miss_rate": miss_rate,
            "hits": int(metrics.get("hits", 0)),
            "misses": int(metrics.get("misses", 0)),
            "sets": int(metrics.get("sets", 0)),
            "deletes": int(metrics.get("deletes", 0)),
        }

    combined = _sum({name: totals.get(name, {}) for name in namespaces})
    hits, misses = combined.get("hits", 0.0), combined.get("misses", 0.0)
    hit_rate, miss_rate = _rates(hits, misses)
    raw_bytes, stored_bytes = combined.get("raw_bytes", 0.0), combined.get("stored_bytes", 0.0)
    ttl_weights = [(average_ttls[n], keys[n]) for n in namespaces if n in average_ttls]
    weight = sum(count for _, count in ttl_weights)
    memory_values = [v["memory_mb"] for v in namespace_stats.values() if v["memory_mb"] is not None]
    overview = {
        "total_keys": sum(keys.values()),
        "total_memory_mb": round(sum(memory_values), 3) if memory_values else None,
        "memory_sampled_at": format_ms(min(sampled_at)) if sampled_at else None,
        "hit_rate": hit_rate,
        "miss_rate": miss_rate,
        "average_ttl": (
            round(sum(ttl * count for ttl, count in ttl_weights) / weight) if weight else None
        ),
        "hits": int(hits),
        "misses": int(misses),
        "sets": int(combined.get("sets", 0)),
        "deletes": int(combined.get("deletes", 0)),
        "compression_ratio": round(raw_bytes / stored_bytes, 4) if stored_bytes else None,
    }
    return {
        "overview": overview,
        "namespace_stats": namespace_stats,
        "performance": performance(combined),
        "top_keys": [
            {
                "key": key,
                "namespace": row_namespace,
                "hit_count": int(hit_count),
                "last_accessed": _iso(last_accessed),
            }
            for row_namespace, key, hit_count, last_accessed in top_rows
        ],
        "window": {"from": _iso(window.date_from), "to": _iso(window.date_to)},
        "generated_at": format_ms(now_ms),
    }


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
