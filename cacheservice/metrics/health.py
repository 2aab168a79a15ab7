"""``GET /cache/health`` and the periodic probe behind its uptime figure.

Status: ``unhealthy`` when Redis is down (HTTP 503); ``degraded`` when Postgres or the workers
are down, or Redis may evict index keys (an ``allkeys-*`` policy); else ``healthy``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import Any, Protocol

import psycopg
import psycopg_pool
import redis

from cacheservice.config import Settings
from cacheservice.db import Database
from cacheservice.metrics import histogram
from cacheservice.metrics.recorder import SERVICE
from cacheservice.metrics.statistics import Totals, Window, metric_totals
from cacheservice.store.keys import HEALTH_PROBES
from cacheservice.store.locks import last_completed_ms
from cacheservice.store.pending import PendingStore
from cacheservice.store.server_info import NodeInfo, memory_limit, server_info
from cacheservice.timefmt import format_ms

FLUSH_TASK = "flush_entry_stats"
PERFORMANCE_WINDOW = timedelta(minutes=15)
UPTIME_WINDOW_HOURS = 24
MIB = 1024 * 1024
OPERATIONS = ("get", "set", "delete", "batch_get", "batch_set", "invalidate")


def version() -> str:
    try:
        return metadata.version("cacheservice")
    except metadata.PackageNotFoundError:
        return "unknown"


class _ProcessObjects(Protocol):
    """What a web process (Services) and a worker (WorkerContext) both hold."""

    @property
    def redis(self) -> redis.Redis: ...

    @property
    def pending(self) -> PendingStore: ...

    @property
    def database(self) -> Database: ...

    @property
    def queries(self) -> dict[str, str]: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def started_at(self) -> float: ...


@dataclass(frozen=True)
class HealthSources:
    client: redis.Redis
    pending: PendingStore
    database: Database
    queries: dict[str, str]
    flush_interval: float
    started_at: float

    @classmethod
    def of(cls, process: _ProcessObjects) -> HealthSources:
        return cls(
            client=process.redis,
            pending=process.pending,
            database=process.database,
            queries=process.queries,
            flush_interval=process.settings.flush_interval,
            started_at=process.started_at,
        )


def _mb_text(size: int) -> str:
    return f"{size / MIB:.0f}MB"


def _disconnected(error: str) -> dict[str, Any]:
    # Every field of the seed's shape stays, empty, so clients can read it unconditionally.
    return {
        "status": "disconnected",
        "version": None,
        "memory_usage": None,
        "connected_clients": None,
        "maxmemory_policy": None,
        "error": error[:200],
    }


def _node_section(node: NodeInfo) -> dict[str, Any]:
    if node.info is None:
        return {"address": node.address, "status": "disconnected", "error": node.error}
    return {
        "address": node.address,
        "status": "connected",
        "memory_usage": _mb_text(int(node.info.get("used_memory", 0))),
        "memory_limit": _mb_text(memory_limit(node.info)),
        "memory_usage_percentage": _percent(
            int(node.info.get("used_memory", 0)), memory_limit(node.info)
        ),
        "connected_clients": int(node.info.get("connected_clients", 0)),
    }


def _redis_section(client: redis.Redis) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The combined INFO (None when Redis cannot serve every key) and the ``redis`` section.

    On a cluster the section lists each master; one master not answering makes the whole
    section ``disconnected``: the keys in its slots cannot be served.
    """
    try:
        found = server_info(client)
    except redis.RedisError as error:
        return None, _disconnected(str(error))
    info = found.combined
    if info is None or not found.all_answered:
        failed = [node for node in found.nodes if node.info is None]
        section = _disconnected("; ".join(f"{node.address}: {node.error}" for node in failed))
        section["nodes"] = [_node_section(node) for node in found.nodes]
        return None, section
    section = {
        "status": "connected",
        "version": info.get("redis_version"),
        "memory_usage": _mb_text(int(info.get("used_memory", 0))),
        "connected_clients": int(info.get("connected_clients", 0)),
        "maxmemory_policy": info.get("maxmemory_policy"),
    }
    if found.nodes:
        section["nodes"] = [_node_section(node) for node in found.nodes]
    return info, section


def _postgres_section(database: Database, queries: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        with database.connection() as conn:
            conn.execute(queries["ping"]).fetchone()
    except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
        return {"status": "disconnected", "latency_ms": None, "error": str(error)[:200]}
    return {"status": "connected", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _workers_section(
    client: redis.Redis | None, flush_interval: float, now: float
) -> dict[str, Any]:
    if client is None:
        return {"status": "unknown", "last_flush_at": None, "flush_lag_seconds": None}
    last = last_completed_ms(client, [FLUSH_TASK])[FLUSH_TASK]
    if last is None:
        return {"status": "down", "last_flush_at": None, "flush_lag_seconds": None}
    lag = max(0.0, now - last / 1000)
    # Several missed runs in a row mean no worker (or no beat) is running.
    status = "up" if lag <= max(30.0, 6 * flush_interval) else "down"
    return {"status": status, "last_flush_at": format_ms(last), "flush_lag_seconds": round(lag, 1)}


# The seed's sections with nothing known, when the store they come from is down.
UNKNOWN_MEMORY = {"used_mb": None, "total_mb": None, "usage_percentage": None}
UNKNOWN_CONNECTIONS = {"active": None, "max": None, "usage_percentage": None}
UNKNOWN_PERFORMANCE = {
    figure: None
    for name in ("average_response_time", "p95_response_time", "p99_response_time")
    for figure in (name, f"{name}_ms")
} | {"error_rate": None}


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _performance(totals: Totals) -> dict[str, Any]:
    combined: dict[str, float] = {}
    for name, metrics in totals.items():
        if name == SERVICE:
            continue
        for op in OPERATIONS:
            for metric, value in metrics.items():
                if metric.startswith(f"{op}_ms_"):
                    merged = "all" + metric[len(op) :]
                    combined[merged] = combined.get(merged, 0.0) + value
    service = totals.get(SERVICE, {})
    requests, errors = service.get("requests", 0.0), service.get("errors", 0.0)
    figures = {
        "average_response_time": histogram.average("all", combined),
        "p95_response_time": histogram.percentile("all", combined, 0.95),
        "p99_response_time": histogram.percentile("all", combined, 0.99),
    }
    body: dict[str, Any] = {}
    for name, ms in figures.items():
        body[name] = None if ms is None else f"{ms:.3g}ms"
        body[f"{name}_ms"] = None if ms is None else round(ms, 3)
    body["error_rate"] = round(errors / requests, 4) if requests else 0.0
    return body


def uptime_share(client: redis.Redis, now: float) -> tuple[str | None, int]:
    """Share of successful probes over the last 24 hours, and how many probes that was."""
    hour = int(now) // 3600
    fields = [
        f"{h}:{kind}"
        for h in range(hour - UPTIME_WINDOW_HOURS + 1, hour + 1)
        for kind in ("n", "ok")
    ]
    values = client.hmget(HEALTH_PROBES, fields)
    numbers = [int(value or 0) for value in values]
    probes, successes = sum(numbers[0::2]), sum(numbers[1::2])
    if probes == 0:
        return None, 0
    return f"{100 * successes / probes:.1f}%", probes


def health_report(sources: HealthSources) -> tuple[int, dict[str, Any]]:
    now = time.time()
    info, redis_section = _redis_section(sources.client)
    postgres = _postgres_section(sources.database, sources.queries)
    redis_up = info is not None
    workers = _workers_section(sources.client if redis_up else None, sources.flush_interval, now)
    body: dict[str, Any] = {"version": version()}
    if info is not None:
        used = int(info.get("used_memory", 0))
        total = memory_limit(info)
        clients, max_clients = int(info.get("connected_clients", 0)), int(info.get("maxclients", 0))
        share = info["fullest_node_share"]
        body["memory_usage"] = {
            "used_mb": round(used / MIB, 1),
            "total_mb": round(total / MIB, 1),
            # On a cluster the fullest master decides when writes are refused, not the sum.
            "usage_percentage": None if share is None else round(100 * share, 1),
        }
        body["connections"] = {
            "active": clients,
            "max": max_clients,
            "usage_percentage": _percent(clients, max_clients),
        }
        uptime, probes = uptime_share(sources.client, now)
        body["uptime"], body["uptime_probes"] = uptime, probes
        window = Window(datetime.now(UTC) - PERFORMANCE_WINDOW, datetime.now(UTC))
        body["performance"] = dict(UNKNOWN_PERFORMANCE)
        # A Postgres that just failed its ping is not waited for a second time.
        if postgres["status"] == "connected":
            try:
                totals = metric_totals(
                    sources.pending, sources.database, sources.queries, window, None
                )
                body["performance"] = _performance(totals)
            except (psycopg.Error, psycopg_pool.PoolTimeout):
                pass
    else:
        body.update(
            memory_usage=dict(UNKNOWN_MEMORY),
            connections=dict(UNKNOWN_CONNECTIONS),
            uptime=None,
            uptime_probes=0,
            performance=dict(UNKNOWN_PERFORMANCE),
        )
    if not redis_up:
        status = "unhealthy"
    elif (
        postgres["status"] != "connected"
        or workers["status"] != "up"
        # A cluster whose masters differ lists their policies comma-separated.
        or "allkeys" in str(redis_section.get("maxmemory_policy", ""))
    ):
        status = "degraded"
    else:
        status = "healthy"
    body.update(
        status=status,
        redis=redis_section,
        postgres=postgres,
        workers=workers,
        uptime_seconds=round(now - sources.started_at, 1),
        last_updated=format_ms(int(now * 1000)),
    )
    ordered = {"status": body.pop("status"), **body}
    return (503 if status == "unhealthy" else 200), ordered


def record_probe(client: redis.Redis, ok: bool, at: float) -> None:
    """Count one probe in its hour; hours older than the window expire with the hash's TTL."""
    hour = int(at) // 3600
    pipe = client.pipeline(transaction=False)
    pipe.hincrby(HEALTH_PROBES, f"{hour}:n", 1)
    if ok:
        pipe.hincrby(HEALTH_PROBES, f"{hour}:ok", 1)
    # Hours that left the window: the last day's worth behind it, so a gap in probing leaves
    # no field behind for long.
    stale = [
        f"{h}:{kind}"
        for h in range(hour - 2 * UPTIME_WINDOW_HOURS, hour - UPTIME_WINDOW_HOURS)
        for kind in ("n", "ok")
    ]
    pipe.hdel(HEALTH_PROBES, *stale)
    pipe.expire(HEALTH_PROBES, (UPTIME_WINDOW_HOURS + 1) * 3600)
    pipe.execute()
