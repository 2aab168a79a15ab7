"""Thin named tasks: each takes the overlap lock and calls a plain function of cacheservice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task

from cacheservice import sessions
from cacheservice.metrics import flush, maintenance
from cacheservice.store.locks import mark_completed, task_lock
from cacheservice.store.sessions import SessionStore
from cacheservice.timefmt import now_ms
from workers.context import WorkerContext, context

log = logging.getLogger(__name__)

# A row is removed this long after its expiry: sliding refreshes reach Postgres within a flush
# interval, so a session still alive in Redis never loses its row.
SESSION_CLEANUP_GRACE_SECONDS = 600
SESSION_CLEANUP_BATCH = 5000


def _locked(name: str, work: Callable[[WorkerContext], Any]) -> Any:
    """Run ``work`` unless another run of the same task holds the lock (then skip)."""
    ctx = context()
    with task_lock(ctx.redis, name, ctx.settings.task_lock_seconds) as acquired:
        if not acquired:
            log.info("%s skipped: another run holds the lock", name)
            return "skipped"
        result = work(ctx)
        mark_completed(ctx.redis, name)
        return result


@shared_task(name="cacheservice.flush_entry_stats")
def flush_entry_stats() -> Any:
    def work(ctx: WorkerContext) -> dict[str, int]:
        report = flush.flush_entry_stats(ctx.pending, ctx.database, ctx.queries)
        return vars(report)

    return _locked("flush_entry_stats", work)


@shared_task(name="cacheservice.flush_metrics")
def flush_metrics() -> Any:
    def work(ctx: WorkerContext) -> dict[str, int]:
        return vars(flush.flush_metrics(ctx.pending, ctx.database, ctx.queries, now_ms()))

    return _locked("flush_metrics", work)


@shared_task(name="cacheservice.prune_indexes")
def prune_indexes() -> Any:
    def work(ctx: WorkerContext) -> int:
        return maintenance.prune_everything(
            ctx.redis, ctx.keyspace, ctx.pending, ctx.database, ctx.queries
        )

    return _locked("prune_indexes", work)


@shared_task(name="cacheservice.probe_health")
def probe_health() -> Any:
    # No lock: every probe counts, and a probe must run even while Redis (the lock) is down.
    return maintenance.probe(context().health_sources())


@shared_task(name="cacheservice.sample_memory")
def sample_memory() -> Any:
    def work(ctx: WorkerContext) -> None:
        maintenance.sample_memory(ctx.redis, ctx.keyspace, ctx.pending, now_ms())

    return _locked("sample_memory", work)


@shared_task(name="cacheservice.flush_session_access")
def flush_session_access() -> Any:
    def work(ctx: WorkerContext) -> int:
        return sessions.flush_session_access(ctx.redis, ctx.database, ctx.queries)

    return _locked("flush_session_access", work)


@shared_task(name="cacheservice.cleanup_sessions")
def cleanup_sessions() -> Any:
    def work(ctx: WorkerContext) -> int:
        return sessions.cleanup_expired_sessions(
            SessionStore(ctx.redis),
            ctx.database,
            ctx.queries,
            grace_seconds=SESSION_CLEANUP_GRACE_SECONDS,
            limit=SESSION_CLEANUP_BATCH,
        )

    return _locked("cleanup_sessions", work)
