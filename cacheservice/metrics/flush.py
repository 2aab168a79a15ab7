"""Moving entry statistics and metric samples from Redis to Postgres, with exactly-once effect.

The protocol, for every batch:

1. a Lua script renames the pending structure to a batch named by a fresh id, unless an
   unfinished batch exists, which is resumed instead;
2. one Postgres transaction inserts the batch id into ``flush_batches`` (``ON CONFLICT DO
   NOTHING``) and applies the batch only if the id was new, adding counts to the rows;
3. only after the commit the batch is deleted from Redis.

A worker killed between 2 and 3 leaves the batch in flight; the next run finds its id already
in ``flush_batches``, skips the apply and deletes it. So a crash, a redelivered task or a
Postgres outage (the batch simply waits in Redis) neither loses nor double-counts anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from cacheservice.db import Database
from cacheservice.store.pending import EntryBatch, EntryMetadata, PendingStore

log = logging.getLogger(__name__)

FIELD_SEPARATOR = "\t"


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass
class FlushReport:
    batches: int = 0
    skipped_batches: int = 0
    rows: int = 0


def _claim(
    conn: psycopg.Connection, queries: dict[str, str], batch_id: str, kind: str, items: int
) -> bool:
    """Record the batch as applied; False when an earlier run already applied it."""
    row = conn.execute(
        queries["claim_batch"], {"batch_id": batch_id, "kind": kind, "items": items}
    ).fetchone()
    return row is not None


def _entry_rows(
    namespace: str,
    keys: Iterable[str],
    hits: dict[str, int],
    last_access: dict[str, int],
    metadata: dict[str, EntryMetadata | None],
) -> list[tuple[object, ...]]:
    """Stage rows: ``live`` (metadata read), ``hits`` (only counts moved) or ``gone``."""
    rows: list[tuple[object, ...]] = []
    for key in keys:
        if key not in metadata:
            no_metadata = (None,) * 7
            rows.append(
                (
                    namespace,
                    key,
                    "hits",
                    *no_metadata,
                    hits.get(key, 0),
                    _moment(last_access.get(key)),
                )
            )
            continue
        meta = metadata[key]
        if meta is None:
            rows.append((namespace, key, "gone", None, None, None, None, None, None, None, 0, None))
            continue
        rows.append(
            (
                namespace,
                key,
                "live",
                list(meta.tags),
                meta.ttl,
                _moment(meta.expires_ms),
                _moment(meta.created_ms),
                _moment(meta.updated_ms),
                meta.size_bytes,
                meta.stored_bytes,
                hits.get(key, 0),
                _moment(last_access.get(key)),
            )
        )
    return rows


def flush_entry_stats(
    pending: PendingStore, database: Database, queries: dict[str, str]
) -> FlushReport:
    """Flush hit counts, last access and entry metadata of every namespace."""
    report = FlushReport()
    for namespace in pending.namespaces():
        batches = pending.claim_entry_batches(namespace)
        if batches:
            _flush_namespace(namespace, batches, pending, database, queries, report)
    return report


def _flush_namespace(
    namespace: str,
    batches: list[EntryBatch],
    pending: PendingStore,
    database: Database,
    queries: dict[str, str],
    report: FlushReport,
) -> None:
    contents = {batch: pending.read_entry_batch(batch) for batch in batches}
    with database.connection() as conn, conn.transaction():
        fresh = [
            batch
            for batch in batches
            if _claim(conn, queries, batch.batch_id, "entries", len(contents[batch].keys()))
        ]
        report.skipped_batches += len(batches) - len(fresh)
        hits: dict[str, int] = {}
        last_access: dict[str, int] = {}
        keys: set[str] = set()
        changed: set[str] = set()
        for batch in fresh:
            batch_contents = contents[batch]
            hits.update(batch_contents.hits)  # A key lives in one bucket: no overlaps.
            last_access.update(batch_contents.last_access_ms)
            keys |= batch_contents.keys()
            changed |= batch_contents.changed
        if keys:
            # Metadata is read only where a write, delete or slide marked it changed; a key
            # that was only read keeps the metadata its row already has.
            metadata = pending.entry_metadata(namespace, sorted(changed))
            rows = _entry_rows(namespace, keys, hits, last_access, metadata)
            conn.execute(queries["create_entry_stage"])
            with conn.cursor().copy(queries["copy_entry_stage"]) as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute(queries["upsert_entries"])
            conn.execute(queries["upsert_hits"])
            conn.execute(queries["delete_gone_entries"])
            report.rows += len(rows)
    # Only after the commit: a crash before this line leaves the batches to be resumed.
    pending.finish_entry_batches(batches)
    report.batches += len(batches)


def parse_metric_field(field: str) -> tuple[str, datetime, str]:
    """``"<namespace>\\t<minute epoch s>\\t<metric>"`` -> (namespace, minute, metric)."""
    namespace, minute, metric = field.split(FIELD_SEPARATOR)
    return namespace, datetime.fromtimestamp(int(minute), tz=UTC), metric


def flush_metrics(
    pending: PendingStore, database: Database, queries: dict[str, str], now_ms: int
) -> FlushReport:
    """Flush the per-minute, per-namespace metric samples pushed by the web processes."""
    report = FlushReport()
    batch_id = pending.claim_metrics_batch()
    if batch_id is None:
        return report
    samples = pending.read_metrics(pending.metrics_batch_key(batch_id))
    with database.connection() as conn, conn.transaction():
        if _claim(conn, queries, batch_id, "metrics", len(samples)):
            conn.execute(queries["create_metric_stage"])
            with conn.cursor().copy(queries["copy_metric_stage"]) as copy:
                for field, value in samples.items():
                    namespace, minute, metric = parse_metric_field(field)
                    copy.write_row((metric, namespace, minute, value))
            conn.execute(queries["upsert_metrics"])
            report.rows += len(samples)
        else:
            report.skipped_batches += 1
    pending.finish_metrics_batch(batch_id, now_ms)
    report.batches += 1
    return report
