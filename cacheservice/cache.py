"""The entry operations of the contract, between the HTTP views and the Redis store.

Views hand over parsed requests; this module applies the contract's rules (key validation,
expiry, value encoding and size limits), calls the store once, and returns plain results
that the views render.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cacheservice import codec
from cacheservice.config import Settings
from cacheservice.errors import InvalidRequest, KeyExists, KeyNotFound, ServiceError, ValueTooLarge
from cacheservice.metrics.recorder import Metrics, NullMetrics
from cacheservice.store.entries import EntryStore, NewEntry, StoredEntry, WriteOutcome
from cacheservice.store.invalidation import Invalidated, Invalidator, Selection
from cacheservice.store.ratelimit import LimitCheck
from cacheservice.timefmt import now_ms, to_ms
from cacheservice.validation import MAX_TTL_SECONDS, check_key


@dataclass(frozen=True)
class EntryWrite:
    """One entry to store, as parsed from a request."""

    key: str
    value: Any
    ttl: int | None = None
    expires_at: datetime | None = None
    tags: Sequence[str] = ()
    value_type: str = "json"


@dataclass(frozen=True)
class Written:
    entry: NewEntry
    outcome: WriteOutcome


@dataclass(frozen=True)
class WriteFailure:
    key: str | None
    error: ServiceError


class Cache:
    def __init__(
        self,
        settings: Settings,
        entries: EntryStore,
        invalidator: Invalidator,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        self.entries = entries
        self.invalidator = invalidator
        self.metrics: Metrics = metrics or NullMetrics()
        self.clock = clock

    # Reads

    def read(
        self, namespace: str, key: str, guard: LimitCheck | None = None
    ) -> tuple[StoredEntry, int]:
        check_key(key)
        now = self.clock()
        entry = self.entries.get(namespace, key, now, guard)
        if entry is None:
            self.metrics.count(namespace, "misses")
            raise KeyNotFound(key=key, namespace=namespace)
        self.metrics.count(namespace, "hits")
        return entry, now

    def read_many(
        self, namespace: str, keys: Sequence[str]
    ) -> tuple[list[str], dict[str, StoredEntry], int]:
        """Unique keys in request order, the entries found among them, and the read time."""
        for index, key in enumerate(keys):
            check_key(key, index=index)
        unique = list(dict.fromkeys(keys))
        now = self.clock()
        found = self.entries.get_many(namespace, unique, now)
        self.metrics.count(namespace, "hits", len(found))
        self.metrics.count(namespace, "misses", len(unique) - len(found))
        return unique, found, now

    # Writes

    def _prepare(self, write: EntryWrite, now: int) -> NewEntry:
        check_key(write.key)
        if write.expires_at is not None:
            expires_ms = to_ms(write.expires_at)
            if expires_ms <= now:
                raise InvalidRequest("expires_at must be in the future", field="expires_at")
            # The TTL reported for an absolute expiry is the whole seconds it had when written.
            ttl = -(-(expires_ms - now) // 1000)
            if ttl > MAX_TTL_SECONDS:
                raise InvalidRequest(
                    "expires_at is too far in the future",
                    field="expires_at",
                    max_ttl_seconds=MAX_TTL_SECONDS,
                )
        else:
            ttl = write.ttl if write.ttl is not None else self.settings.default_ttl
            expires_ms = now + ttl * 1000
        encoded = codec.encode(write.value, write.value_type)
        if encoded.raw_bytes > self.settings.max_value_bytes:
            raise ValueTooLarge(
                key=write.key, size_bytes=encoded.raw_bytes, max_bytes=self.settings.max_value_bytes
            )
        etag = hashlib.blake2b(encoded.blob, digest_size=12).hexdigest()
        return NewEntry(write.key, encoded, ttl, expires_ms, tuple(dict.fromkeys(write.tags)), etag)

    def write(
        self,
        namespace: str,
        write: EntryWrite,
        overwrite: bool,
        guard: LimitCheck | None = None,
    ) -> Written:
        now = self.clock()
        entry = self._prepare(write, now)
        outcome = self.entries.set(namespace, entry, overwrite, now, guard)
        if outcome.refused:
            raise KeyExists(key=write.key, namespace=namespace)
        self._count_write(namespace, entry)
        return Written(entry, outcome)

    def _count_write(self, namespace: str, entry: NewEntry) -> None:
        self.metrics.count(namespace, "sets")
        self.metrics.count(namespace, "raw_bytes", entry.value.raw_bytes)
        self.metrics.count(namespace, "stored_bytes", entry.value.stored_bytes)

    def write_many(
        self, namespace: str, writes: Sequence[EntryWrite | WriteFailure], overwrite: bool
    ) -> list[Written | WriteFailure]:
        """Store every valid item in one pipeline; invalid ones fail alone, in place.

        When the same key appears twice, the later item wins, as it would with two calls.
        """
        now = self.clock()
        results: list[Written | WriteFailure | None] = []
        prepared: list[tuple[int, NewEntry]] = []
        for position, write in enumerate(writes):
            if isinstance(write, WriteFailure):
                results.append(write)
                continue
            try:
                prepared.append((position, self._prepare(write, now)))
                results.append(None)  # Filled in once the store has answered.
            except ServiceError as error:
                results.append(WriteFailure(write.key, error))
        outcomes = self.entries.set_many(
            namespace, [entry for _, entry in prepared], overwrite, now
        )
        for (position, entry), outcome in zip(prepared, outcomes, strict=True):
            if outcome.refused:
                refused = KeyExists(key=entry.key, namespace=namespace)
                results[position] = WriteFailure(entry.key, refused)
            else:
                results[position] = Written(entry, outcome)
                self._count_write(namespace, entry)
        return [result for result in results if result is not None]

    def delete(self, namespace: str, key: str, guard: LimitCheck | None = None) -> int:
        check_key(key)
        now = self.clock()
        if not self.entries.delete(namespace, key, now, guard):
            raise KeyNotFound(key=key, namespace=namespace)
        self.metrics.count(namespace, "deletes")
        return now

    def invalidate(
        self, namespace: str, selection: Selection, list_limit: int
    ) -> tuple[Invalidated, int]:
        if selection.keys is not None:
            for index, key in enumerate(selection.keys):
                check_key(key, index=index)
        result = self.invalidator.invalidate(namespace, selection, list_limit)
        self.metrics.count(namespace, "invalidations", result.total)
        return result, self.clock()
