"""Reading, writing and deleting entries: each operation is one round trip to Redis."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from cacheservice.codec import EncodedValue
from cacheservice.store.keys import Bucket, KeySpace
from cacheservice.store.ratelimit import LimitCheck
from cacheservice.store.scripts import Script, ScriptCall, Scripts

STATUS_EXISTS, STATUS_CREATED, STATUS_REPLACED = 0, 1, 2
# Bytes of values one get_entries call reads before it leaves the rest for another call.
# Redis serves nobody while a script runs: copying 500 values of 1 MiB in one call held it for
# about two seconds; 4 MiB took about 20 ms (tests/integration/test_roundtrips.py, read budget).
READ_BUDGET_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoredEntry:
    """An entry as read from Redis; times are milliseconds since the epoch."""

    key: str
    blob: bytes
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    ttl: int | None
    tags: tuple[str, ...]
    hit_count: int
    last_access_ms: int | None
    raw_bytes: int
    stored_bytes: int
    value_type: str
    compression: str
    etag: str
    sliding: bool = False
    # The elements of a list or set entry (as stored: JSON text, or set members).
    items: tuple[bytes, ...] = ()
    # How many elements a list or set holds (reported by PATCH, which returns no value).
    length: int | None = None

    @classmethod
    def from_fields(cls, key: str, flat: Sequence[Any]) -> StoredEntry:
        pairs = iter(flat)
        fields = dict(zip(pairs, pairs, strict=True))
        items = fields.get(b"items")
        expires, ttl, last_access = fields.get(b"ex"), fields.get(b"ttl"), fields.get(b"la")
        tags = fields.get(b"tg", b"")
        return cls(
            key=key,
            blob=fields[b"v"],
            created_ms=int(fields[b"ca"]),
            updated_ms=int(fields[b"ua"]),
            expires_ms=int(expires) if expires else None,
            ttl=int(ttl) if ttl else None,
            tags=tuple(tags.decode().split("\n")) if tags else (),
            hit_count=int(fields.get(b"hc", b"0")),
            last_access_ms=int(last_access) if last_access else None,
            raw_bytes=int(fields[b"sz"]),
            stored_bytes=len(fields[b"v"]) if items is None else int(fields[b"sz"]),
            value_type=fields[b"ty"].decode(),
            compression=fields[b"cp"].decode(),
            etag=fields[b"et"].decode(),
            sliding=fields.get(b"sl") == b"1",
            items=tuple(items or ()),
            length=int(fields[b"length"]) if b"length" in fields else None,
        )


def _int_or_none(raw: bytes | None) -> int | None:
    return int(raw) if raw else None


def entry_from_values(key: str, values: Sequence[Any], full: bool) -> StoredEntry:
    """An entry from get_entries.lua's reply: the field values in the script's FIELDS order
    (all 13, or only value, type, compression and etag), then the elements of a list or set.
    Without ``full`` the metadata fields are left at zero: the caller renders the value only.
    """
    blob, value_type, compression, etag = values[0], values[1], values[2], values[3]
    extra = values[13 if full else 4 :]
    items = tuple(extra[0]) if extra else ()
    text_type = value_type.decode()
    if not full:
        return StoredEntry(
            key=key,
            blob=blob,
            created_ms=0,
            updated_ms=0,
            expires_ms=None,
            ttl=None,
            tags=(),
            hit_count=0,
            last_access_ms=None,
            raw_bytes=0,
            stored_bytes=0,
            value_type=text_type,
            compression=compression.decode(),
            etag=etag.decode(),
            items=items,
        )
    created, updated, expires, ttl, tags, hits, last_access, size, sliding = values[4:13]
    return StoredEntry(
        key=key,
        blob=blob,
        created_ms=int(created),
        updated_ms=int(updated),
        expires_ms=_int_or_none(expires),
        ttl=_int_or_none(ttl),
        tags=tuple(tags.decode().split("\n")) if tags else (),
        hit_count=int(hits or 0),
        last_access_ms=_int_or_none(last_access),
        raw_bytes=int(size),
        stored_bytes=int(size) if text_type in ("list", "set") else len(blob),
        value_type=text_type,
        compression=compression.decode(),
        etag=etag.decode(),
        sliding=sliding == b"1",
        items=items,
    )


@dataclass(frozen=True)
class NewEntry:
    """What a write stores: the encoded value and its expiry and tags."""

    key: str
    value: EncodedValue
    ttl: int | None
    expires_ms: int | None
    tags: tuple[str, ...]
    etag: str
    sliding: bool = False
    # Elements of a list (in order) or set entry; stored in a native Redis list or set.
    items: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class WriteOutcome:
    status: int
    created_ms: int

    @property
    def created(self) -> bool:
        return self.status == STATUS_CREATED

    @property
    def refused(self) -> bool:
        return self.status == STATUS_EXISTS


class EntryStore:
    """Entry operations; single-entry ones can carry a rate limit check in the same call."""

    def __init__(
        self, client: redis.Redis, keyspace: KeySpace, read_budget: int = READ_BUDGET_BYTES
    ) -> None:
        self.scripts = Scripts(client)
        self.keyspace = keyspace
        self.read_budget = read_budget

    def _run(self, call: ScriptCall, guard: LimitCheck | None, guarded: Script, now_ms: int) -> Any:
        """Run ``call``; with a guard, run ``guarded`` (the same script behind the limit check).

        Raises ``RateLimited`` when the limiter refused; the operation then did not run.
        """
        if guard is None:
            return self.scripts.run(call)
        reply = self.scripts.run(
            ScriptCall(
                guarded,
                [*guard.script_keys(), *call.keys],
                [*guard.script_args(now_ms), *call.args],
            )
        )
        guard.settle(reply[0])
        return reply[1]

    def _get_call(
        self, bucket: Bucket, keys: Sequence[str], now_ms: int, sliding: bool, full: bool
    ) -> ScriptCall:
        return ScriptCall(
            Scripts.get_entries,
            [bucket.pending_hits, bucket.pending_access, *map(bucket.entry, keys)],
            [
                now_ms,
                "1" if sliding else "0",
                bucket.prefix,
                "1" if full else "0",
                self.read_budget,
                *keys,
            ],
        )

    def get_many(
        self,
        namespace: str,
        keys: Iterable[str],
        now_ms: int,
        sliding: bool = False,
        full: bool = True,
    ) -> dict[str, StoredEntry]:
        """Read entries and count their hits: one script call per bucket, one pipeline.

        Without ``full`` only what renders the value comes back (no metadata): a batch of
        1000 keys then moves a third of the data. A bucket whose values pass the read budget
        is read in several calls (one more round trip each time), never in one long one.
        Should a later call fail, the request fails (503) after the earlier calls counted
        their hits: a retry counts those again.
        """
        unread: dict[Bucket, list[str]] = defaultdict(list)
        for key in keys:
            unread[self.keyspace.bucket(namespace, key)].append(key)
        found: dict[str, StoredEntry] = {}
        while unread:
            calls = [
                self._get_call(bucket, bucket_keys, now_ms, sliding, full)
                for bucket, bucket_keys in unread.items()
            ]
            replies = self.scripts.run_pipelined(calls)
            left: dict[Bucket, list[str]] = {}
            for (bucket, bucket_keys), reply in zip(unread.items(), replies, strict=True):
                for key, values in zip(bucket_keys, reply, strict=False):
                    if values:
                        found[key] = entry_from_values(key, values, full)
                if not reply:
                    # The script always reads the first entry; an empty reply would loop.
                    raise RuntimeError("get_entries read nothing of a non-empty key list")
                if len(reply) < len(bucket_keys):
                    left[bucket] = bucket_keys[len(reply) :]
            unread = left
        return found

    def get(
        self,
        namespace: str,
        key: str,
        now_ms: int,
        guard: LimitCheck | None = None,
        sliding: bool = False,
        full: bool = True,
    ) -> StoredEntry | None:
        bucket = self.keyspace.bucket(namespace, key)
        call = self._get_call(bucket, [key], now_ms, sliding, full)
        (values,) = self._run(call, guard, Scripts.guarded_get_entries, now_ms)
        return entry_from_values(key, values, full) if values else None

    def _set_call(
        self, namespace: str, entry: NewEntry, overwrite: bool, now_ms: int
    ) -> ScriptCall:
        bucket = self.keyspace.bucket(namespace, entry.key)
        return ScriptCall(
            Scripts.set_entry,
            [bucket.entry(entry.key)],
            [
                bucket.prefix,
                entry.key,
                now_ms,
                "1" if overwrite else "0",
                "" if entry.expires_ms is None else entry.expires_ms,
                "\n".join(entry.tags),
                len(entry.items),
                *entry.items,
                "v",
                entry.value.blob,
                "ty",
                entry.value.value_type,
                "cp",
                entry.value.compression,
                "sz",
                entry.value.raw_bytes,
                "ttl",
                "" if entry.ttl is None else entry.ttl,
                "et",
                entry.etag,
                "sl",
                "1" if entry.sliding else "0",
            ],
        )

    def set(
        self,
        namespace: str,
        entry: NewEntry,
        overwrite: bool,
        now_ms: int,
        guard: LimitCheck | None = None,
    ) -> WriteOutcome:
        call = self._set_call(namespace, entry, overwrite, now_ms)
        status, created_ms = self._run(call, guard, Scripts.guarded_set_entry, now_ms)
        return WriteOutcome(int(status), int(created_ms))

    def set_many(
        self, namespace: str, entries: Sequence[NewEntry], overwrite: bool, now_ms: int
    ) -> list[WriteOutcome]:
        """Write many entries in one pipeline; each entry's write is atomic on its own."""
        if not entries:
            return []
        calls = [self._set_call(namespace, entry, overwrite, now_ms) for entry in entries]
        replies = self.scripts.run_pipelined(calls)
        return [WriteOutcome(int(status), int(created)) for status, created in replies]

    def delete(
        self, namespace: str, key: str, now_ms: int, guard: LimitCheck | None = None
    ) -> bool:
        bucket = self.keyspace.bucket(namespace, key)
        call = ScriptCall(Scripts.delete_entry, [bucket.entry(key)], [bucket.prefix, key])
        return bool(self._run(call, guard, Scripts.guarded_delete_entry, now_ms))

    def patch(
        self,
        namespace: str,
        key: str,
        operation: str,
        arguments: Sequence[str | bytes | int],
        now_ms: int,
        max_ttl: int | None,
        max_bytes: int,
        guard: LimitCheck | None = None,
    ) -> StoredEntry | str:
        """Apply one PATCH operation atomically; the entry afterwards, or an error word
        (``missing``, ``not_list``, ``not_set``, ``no_expiry``, ``too_long``, ``too_large``)."""
        bucket = self.keyspace.bucket(namespace, key)
        call = ScriptCall(
            Scripts.patch_entry,
            [bucket.entry(key)],
            [
                bucket.prefix,
                key,
                now_ms,
                "" if max_ttl is None else max_ttl,
                max_bytes,
                operation,
                *arguments,
            ],
        )
        reply = self._run(call, guard, Scripts.guarded_patch_entry, now_ms)
        if reply[0] != b"ok":
            return str(reply[0].decode())
        return StoredEntry.from_fields(key, reply[1:])
