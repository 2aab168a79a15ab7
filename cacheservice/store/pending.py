"""The Redis half of the flush to Postgres: handing pending data over to named batches,
reading them, and dropping them once Postgres has committed them.

Entry statistics are pending per bucket (``fh`` hits, ``fa`` last access, ``fm`` changed keys,
written by the entry scripts); metric deltas are pending in one service-wide hash, pushed by
the web processes. Batches are read with HSCAN/SSCAN in chunks, so a large batch never blocks
Redis.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import redis

from cacheservice.store.keys import Bucket, KeySpace, MetricsKeys
from cacheservice.store.scripts import ScriptCall, Scripts

ENTRY_BATCH_PARTS = ("h", "a", "m")  # Taken over from fh, fa and fm.
METRICS_BATCH_PARTS = ("p",)
READ_CHUNK = 1000
# Long enough for any statistics request that took its Postgres snapshot before a batch was
# applied to still find the batch in Redis.
DONE_BATCH_KEEP_MS = 60_000
# A push marker whose reply arrived guards against nothing more than a duplicate still in
# flight; a minute is ample.
ANSWERED_MARKER_SECONDS = 60
METADATA_FIELDS = ("ca", "ua", "ex", "ttl", "tg", "sz")


@dataclass(frozen=True)
class EntryBatch:
    bucket: Bucket
    batch_id: str

    def part(self, name: str) -> str:
        return f"{self.bucket.flush_batch_prefix}{self.batch_id}:{name}"


@dataclass
class EntryBatchContents:
    hits: dict[str, int] = field(default_factory=dict)
    last_access_ms: dict[str, int] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)

    def keys(self) -> set[str]:
        return set(self.hits) | set(self.last_access_ms) | self.changed


@dataclass(frozen=True)
class EntryMetadata:
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    ttl: int | None
    tags: tuple[str, ...]
    size_bytes: int
    stored_bytes: int


def new_batch_id() -> str:
    return uuid.uuid4().hex


class PendingStore:
    def __init__(self, client: redis.Redis, keyspace: KeySpace) -> None:
        self.client = client
        self.scripts = Scripts(client)
        self.keyspace = keyspace
        # Markers of metric pushes whose reply arrived: never retried, so kept only briefly.
        self._answered_markers: list[str] = []
        self._answered_lock = threading.Lock()

    # Entry statistics

    def claim_entry_batches(self, namespace: str) -> list[EntryBatch]:
        """Hand each bucket's pending entry stats to a batch (or resume an unfinished one)."""
        buckets = self.keyspace.all_buckets(namespace)
        calls = [
            ScriptCall(
                Scripts.claim_batch,
                [b.flush_pointer, b.pending_hits, b.pending_access, b.pending_metadata],
                [b.flush_batch_prefix, new_batch_id(), *ENTRY_BATCH_PARTS],
            )
            for b in buckets
        ]
        replies = self.scripts.run_pipelined(calls)
        return [
            EntryBatch(bucket, reply.decode())
            for bucket, reply in zip(buckets, replies, strict=True)
            if reply
        ]

    def read_entry_batch(self, batch: EntryBatch) -> EntryBatchContents:
        contents = EntryBatchContents()
        for key, value in self._scan_hash(batch.part("h")):
            contents.hits[key] = int(float(value))
        for key, value in self._scan_hash(batch.part("a")):
            contents.last_access_ms[key] = int(value)
        contents.changed = {
            member.decode() for member in self.client.sscan_iter(batch.part("m"), count=READ_CHUNK)
        }
        return contents

    def _scan_hash(self, name: str) -> Iterator[tuple[str, bytes]]:
        for key, value in self.client.hscan_iter(name, count=READ_CHUNK):
            yield key.decode(), value

    def entry_metadata(
        self, namespace: str, keys: Sequence[str]
    ) -> dict[str, EntryMetadata | None]:
        """Current metadata of entries (None for an entry that is gone), chunked pipelines."""
        found: dict[str, EntryMetadata | None] = {}
        for start in range(0, len(keys), READ_CHUNK):
            chunk = keys[start : start + READ_CHUNK]
            pipe = self.client.pipeline(transaction=False)
            for key in chunk:
                entry = self.keyspace.bucket(namespace, key).entry(key)
                pipe.hmget(entry, METADATA_FIELDS)
                pipe.hstrlen(entry, "v")
            replies = pipe.execute()
            for index, key in enumerate(chunk):
                fields, stored = replies[2 * index], replies[2 * index + 1]
                found[key] = _metadata(fields, stored)
        return found

    def finish_entry_batches(self, batches: Iterable[EntryBatch]) -> None:
        calls = [
            ScriptCall(
                Scripts.finish_batch,
                [batch.bucket.flush_pointer],
                [batch.bucket.flush_batch_prefix, batch.batch_id, *ENTRY_BATCH_PARTS],
            )
            for batch in batches
        ]
        if calls:
            self.scripts.run_pipelined(calls)

    # Metrics

    def push_metrics(
        self, push_id: str, namespaces: Iterable[str], deltas: dict[str, float], ttl: int = 3600
    ) -> bool:
        """Add metric deltas exactly once per ``push_id`` (safe to retry after a timeout).

        The marker that makes a retry a no-op lives ``ttl`` seconds while the push may still be
        retried, that is until its reply has arrived. The markers of pushes answered since the
        last call are cut to ``ANSWERED_MARKER_SECONDS`` in the same script call, so a web
        process pushing every second keeps about a minute of markers in Redis rather than an
        hour of them.
        """
        marker = MetricsKeys.push_marker(push_id)
        with self._answered_lock:
            answered, self._answered_markers = self._answered_markers, []
        shortened = [key for key in answered if key != marker]
        names = sorted(set(namespaces))
        args: list[str | int | float] = [ttl, ANSWERED_MARKER_SECONDS, len(names), *names]
        for name, delta in deltas.items():
            args.extend((name, repr(delta) if isinstance(delta, float) else delta))
        call = ScriptCall(
            Scripts.push_metrics,
            [MetricsKeys.pending, marker, MetricsKeys.namespaces, *shortened],
            args,
        )
        try:
            applied = bool(self.scripts.run(call))
        except BaseException:
            # Not known to have run: those markers are cut by a later call instead.
            with self._answered_lock:
                self._answered_markers[:0] = answered
            raise
        with self._answered_lock:
            self._answered_markers.append(marker)
        return applied

    def namespaces(self) -> list[str]:
        return sorted(_text(member) for member in self.client.smembers(MetricsKeys.namespaces))

    def claim_metrics_batch(self) -> str | None:
        call = ScriptCall(
            Scripts.claim_batch,
            [MetricsKeys.inflight, MetricsKeys.pending],
            [MetricsKeys.batch_prefix, new_batch_id(), *METRICS_BATCH_PARTS],
        )
        reply = self.scripts.run(call)
        return reply.decode() if reply else None

    def metrics_batch_key(self, batch_id: str) -> str:
        return f"{MetricsKeys.batch_prefix}{batch_id}:p"

    def read_metrics(self, name: str) -> dict[str, float]:
        return {key: float(value) for key, value in self._scan_hash(name)}

    def finish_metrics_batch(self, batch_id: str, now_ms: int) -> None:
        call = ScriptCall(
            Scripts.finish_metrics_batch,
            [MetricsKeys.inflight, MetricsKeys.done],
            [MetricsKeys.batch_prefix, batch_id, now_ms, DONE_BATCH_KEEP_MS],
        )
        self.scripts.run(call)

    def metrics_snapshot(self) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
        """The pending metric deltas, and every batch Postgres may not hold yet (by id)."""
        call = ScriptCall(
            Scripts.metrics_snapshot,
            [MetricsKeys.pending, MetricsKeys.inflight, MetricsKeys.done],
            [MetricsKeys.batch_prefix],
        )
        reply = self.scripts.run(call)
        batches = {_text(batch_id): _floats(fields) for batch_id, fields in reply[1:]}
        return _floats(reply[0]), batches


def _floats(flat: Sequence[bytes]) -> dict[str, float]:
    return {_text(name): float(value) for name, value in zip(flat[::2], flat[1::2], strict=True)}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _metadata(fields: list[bytes | None], stored: int) -> EntryMetadata | None:
    created, updated, expires, ttl, tags, size = fields
    if created is None:
        return None
    return EntryMetadata(
        created_ms=int(created),
        updated_ms=int(updated or created),
        expires_ms=int(expires) if expires else None,
        ttl=int(ttl) if ttl else None,
        tags=tuple(tags.decode().split("\n")) if tags else (),
        size_bytes=int(size or 0),
        stored_bytes=int(stored),
    )
