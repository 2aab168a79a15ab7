"""The entry operations of the contract, between the HTTP views and the Redis store.

Views hand over parsed requests; this module applies the contract's rules (key validation,
expiry, value encoding and size limits), calls the store once, and returns plain results
that the views render.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cacheservice import codec
from cacheservice.config import Settings
from cacheservice.crypto import KeyRing
from cacheservice.errors import (
    Forbidden,
    InvalidRequest,
    KeyExists,
    KeyNotFound,
    ServiceError,
    ValueTooLarge,
)
from cacheservice.jsonio import dumps_value
from cacheservice.metrics.recorder import Metrics, NullMetrics
from cacheservice.namespaces.config import NamespaceConfig
from cacheservice.namespaces.registry import NamespaceRegistry
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
    # True when the request named a ttl, even null (no expiry); False: the default applies.
    ttl_given: bool = False
    expires_at: datetime | None = None
    tags: Sequence[str] = ()
    value_type: str = "json"
    sliding: bool = False


@dataclass(frozen=True)
class Read:
    """An entry as read, with its value decoded (type and plain payload bytes)."""

    entry: StoredEntry
    payload: bytes
    now_ms: int


COLLECTION_TYPES = ("list", "set")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EntryChange:
    """One PATCH operation: ttl, expires_at, extend_by, persist, tags, append, prepend, add or
    remove, with its argument (seconds, a datetime, a tag list or elements)."""

    operation: str
    argument: Any = None


@dataclass(frozen=True)
class Written:
    entry: NewEntry
    outcome: WriteOutcome


@dataclass(frozen=True)
class WriteFailure:
    key: str | None
    error: ServiceError


def associated_data(namespace: str, key: str) -> bytes:
    """What an encrypted value is bound to: a blob copied to another key fails to decrypt."""
    return namespace.encode() + b"\0" + key.encode()


class Cache:
    def __init__(
        self,
        settings: Settings,
        entries: EntryStore,
        invalidator: Invalidator,
        namespaces: NamespaceRegistry,
        metrics: Metrics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.settings = settings
        # Every value came in a body, so none decompresses to more than the largest body.
        self.decompression_limit = max(codec.DEFAULT_DECOMPRESSION_LIMIT, settings.max_body_bytes)
        self.entries = entries
        self.invalidator = invalidator
        self.namespaces = namespaces
        self.keyring = KeyRing.parse(settings.encryption_keys or "")
        self.metrics: Metrics = metrics or NullMetrics()
        self.clock = clock

    # Namespace rules

    def readable(self, namespace: str) -> NamespaceConfig:
        config = self.namespaces.config(namespace)
        if config.status == "disabled":
            raise Forbidden("This namespace is disabled", namespace=namespace, status="disabled")
        return config

    def writable(self, namespace: str) -> NamespaceConfig:
        config = self.readable(namespace)
        if config.status == "read_only":
            raise Forbidden("This namespace is read-only", namespace=namespace, status="read_only")
        return config

    # Reads

    def _decoded(self, namespace: str, entry: StoredEntry) -> bytes | None:
        """The plain payload of a stored value; None (a miss, counted) when it cannot be
        decrypted, e.g. a blob copied from another key."""
        if entry.value_type in COLLECTION_TYPES:
            return b""
        try:
            _, payload = codec.decode_payload(
                entry.blob,
                keyring=self.keyring,
                dictionaries=self.namespaces.dictionary,
                associated_data=associated_data(namespace, entry.key),
                limit=self.decompression_limit,
            )
        except codec.DecryptionFailed:
            self.metrics.count(namespace, "decrypt_failures")
            return None
        except codec.CorruptValue as error:
            # Unreadable bytes (a dictionary that is gone, a foreign writer): serve a miss, not
            # a 500, and leave a trace for whoever looks.
            log.error("unreadable value %s/%s: %s", namespace, entry.key, error)
            self.metrics.count(namespace, "corrupt_values")
            return None
        return payload

    def read(
        self,
        namespace: str,
        key: str,
        guard: LimitCheck | None = None,
        with_metadata: bool = True,
    ) -> Read:
        check_key(key)
        config = self.readable(namespace)
        now = self.clock()
        entry = self.entries.get(
            namespace, key, now, guard, sliding=config.refresh_ttl_on_access, full=with_metadata
        )
        payload = None if entry is None else self._decoded(namespace, entry)
        if entry is None or payload is None:
            self.metrics.count(namespace, "misses")
            raise KeyNotFound(key=key, namespace=namespace)
        self.metrics.count(namespace, "hits")
        return Read(entry, payload, now)

    def read_many(
        self, namespace: str, keys: Sequence[str], with_metadata: bool = True
    ) -> tuple[list[str], dict[str, Read]]:
        """Unique keys in request order, and the entries found among them."""
        for index, key in enumerate(keys):
            check_key(key, index=index)
        config = self.readable(namespace)
        unique = list(dict.fromkeys(keys))
        now = self.clock()
        stored = self.entries.get_many(
            namespace, unique, now, config.refresh_ttl_on_access, full=with_metadata
        )
        found: dict[str, Read] = {}
        for key, entry in stored.items():
            payload = self._decoded(namespace, entry)
            if payload is not None:
                found[key] = Read(entry, payload, now)
        self.metrics.count(namespace, "hits", len(found))
        self.metrics.count(namespace, "misses", len(unique) - len(found))
        return unique, found

    # Writes

    def _expiry(
        self, write: EntryWrite, config: NamespaceConfig, now: int
    ) -> tuple[int | None, int | None]:
        """(ttl, expires_ms) of a write under its namespace's rules."""
        if write.expires_at is None:
            ttl = config.ttl_for(write.ttl, write.ttl_given)
            return ttl, None if ttl is None else now + ttl * 1000
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
        config.check_ttl(ttl)
        return ttl, expires_ms

    def _encode(
        self, namespace: str, write: EntryWrite, config: NamespaceConfig
    ) -> tuple[codec.EncodedValue, tuple[bytes, ...]]:
        """The stored value, and the elements of a list or set entry."""
        if write.value_type in COLLECTION_TYPES:
            if config.encryption_enabled:
                raise InvalidRequest(
                    "list and set entries cannot be encrypted; use json in this namespace",
                    field="type",
                )
            items = collection_items(write.value, write.value_type)
            size = sum(len(item) for item in items)
            return codec.EncodedValue(b"", write.value_type, "none", size), items
        algorithm = config.compression.algorithm
        compression = codec.Compression(
            algorithm=algorithm,
            # A level kept from an earlier algorithm means nothing once compression is off.
            level=config.compression.level if algorithm != "none" else None,
            min_bytes=config.compression.min_bytes,
            dictionary=self._dictionary(namespace, config),
        )
        encryption = None
        if config.encryption_enabled:
            if not self.keyring:
                raise InvalidRequest(
                    "This namespace encrypts values but no keys are configured",
                    issue="set CACHE_ENCRYPTION_KEYS",
                )
            encryption = codec.Encryption(
                self.keyring.primary, associated_data(namespace, write.key)
            )
        encoded = codec.encode(write.value, write.value_type, compression, encryption)
        return encoded, ()

    def _dictionary(self, namespace: str, config: NamespaceConfig) -> codec.Dictionary | None:
        if not (config.compression.algorithm == "zstd" and config.compression.dictionary):
            return None
        latest = self.namespaces.latest_dictionary(namespace)
        return None if latest is None else codec.Dictionary(*latest)

    def _prepare(
        self, namespace: str, write: EntryWrite, config: NamespaceConfig, now: int
    ) -> NewEntry:
        check_key(write.key)
        ttl, expires_ms = self._expiry(write, config, now)
        encoded, items = self._encode(namespace, write, config)
        if encoded.raw_bytes > config.max_value_bytes:
            raise ValueTooLarge(
                key=write.key, size_bytes=encoded.raw_bytes, max_bytes=config.max_value_bytes
            )
        digest = hashlib.blake2b(encoded.blob, digest_size=12)
        for item in items:
            digest.update(len(item).to_bytes(4, "big") + item)
        return NewEntry(
            key=write.key,
            value=encoded,
            ttl=ttl,
            expires_ms=expires_ms,
            tags=tuple(dict.fromkeys(write.tags)),
            etag=digest.hexdigest(),
            sliding=write.sliding,
            items=items,
        )

    def write(
        self,
        namespace: str,
        write: EntryWrite,
        overwrite: bool,
        guard: LimitCheck | None = None,
    ) -> Written:
        config = self.writable(namespace)
        now = self.clock()
        entry = self._prepare(namespace, write, config, now)
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
        config = self.writable(namespace)
        now = self.clock()
        results: list[Written | WriteFailure | None] = []
        prepared: list[tuple[int, NewEntry]] = []
        for position, write in enumerate(writes):
            if isinstance(write, WriteFailure):
                results.append(write)
                continue
            try:
                prepared.append((position, self._prepare(namespace, write, config, now)))
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
        self.writable(namespace)
        now = self.clock()
        if not self.entries.delete(namespace, key, now, guard):
            raise KeyNotFound(key=key, namespace=namespace)
        self.metrics.count(namespace, "deletes")
        return now

    def patch(
        self,
        namespace: str,
        key: str,
        change: EntryChange,
        guard: LimitCheck | None = None,
    ) -> tuple[StoredEntry, int]:
        """Apply one PATCH operation atomically in Redis (no read-modify-write here)."""
        check_key(key)
        config = self.writable(namespace)
        now = self.clock()
        arguments = self._patch_arguments(change, config, now)
        outcome = self.entries.patch(
            namespace,
            key,
            change.operation,
            arguments,
            now,
            # Without a namespace maximum, extend_by is still bounded by the global one.
            config.max_ttl if config.max_ttl is not None else MAX_TTL_SECONDS,
            config.max_value_bytes,
            guard,
        )
        if isinstance(outcome, str):
            raise _PATCH_ERRORS[outcome](key, namespace, change.operation)
        self.metrics.count(namespace, "sets")
        return outcome, now

    def _patch_arguments(
        self, change: EntryChange, config: NamespaceConfig, now: int
    ) -> list[str | bytes | int]:
        operation, argument = change.operation, change.argument
        if operation == "ttl":
            config.check_ttl(int(argument))
            return [int(argument)]
        if operation == "expires_at":
            expires_ms = to_ms(argument)
            if expires_ms <= now:
                raise InvalidRequest("expires_at must be in the future", field="expires_at")
            config.check_ttl(-(-(expires_ms - now) // 1000))
            return [expires_ms]
        if operation == "extend_by":
            return [int(argument)]
        if operation == "persist":
            if not config.allow_no_expiry:
                raise InvalidRequest(
                    "This namespace does not allow entries without expiry", field="persist"
                )
            return []
        if operation == "tags":
            return list(dict.fromkeys(argument))
        if config.encryption_enabled:
            # Elements live unencrypted in native collections (see _encode).
            raise InvalidRequest(
                "list and set entries cannot be changed in an encrypted namespace",
                field=operation,
            )
        if operation == "append":
            return list(collection_items(argument, "list"))
        if operation == "prepend":
            # The script LPUSHes one element after the other, which would reverse them; the
            # contract keeps the order given.
            return list(reversed(collection_items(argument, "list")))
        return list(collection_items(argument, "set"))

    def invalidate(
        self, namespace: str, selection: Selection, list_limit: int
    ) -> tuple[Invalidated, int]:
        if selection.keys is not None:
            for index, key in enumerate(selection.keys):
                check_key(key, index=index)
        self.writable(namespace)
        result = self.invalidator.invalidate(namespace, selection, list_limit)
        self.metrics.count(namespace, "invalidations", result.total)
        return result, self.clock()


def collection_items(value: Any, value_type: str) -> tuple[bytes, ...]:
    """The stored elements of a list (each as JSON text, in order) or a set (unique strings)."""
    if not isinstance(value, list):
        raise InvalidRequest(f"A {value_type} entry's value must be a JSON array", field="value")
    if value_type == "list":
        return tuple(dumps_value(item) for item in value)
    if not all(isinstance(item, str) for item in value):
        raise InvalidRequest("A set entry's elements must be strings", field="value")
    try:
        return tuple(dict.fromkeys(item.encode("utf-8") for item in value))
    except UnicodeEncodeError:
        raise InvalidRequest("Set elements must be valid Unicode", field="value") from None


def _type_error(expected: str) -> Callable[[str, str, str], ServiceError]:
    def error(key: str, namespace: str, operation: str) -> ServiceError:
        return InvalidRequest(
            f"{operation} applies to {expected} entries only",
            key=key,
            namespace=namespace,
            field=operation,
        )

    return error


_PATCH_ERRORS: dict[str, Callable[[str, str, str], ServiceError]] = {
    "missing": lambda key, namespace, _operation: KeyNotFound(key=key, namespace=namespace),
    "not_list": _type_error("list"),
    "not_set": _type_error("set"),
    "no_expiry": lambda key, namespace, _operation: InvalidRequest(
        "extend_by needs an entry that expires", key=key, namespace=namespace, field="extend_by"
    ),
    "too_large": lambda key, namespace, operation: ValueTooLarge(
        "The change would make the entry larger than the namespace allows",
        key=key,
        namespace=namespace,
        field=operation,
    ),
    "too_long": lambda key, namespace, _operation: InvalidRequest(
        "The extended TTL would exceed the namespace's max_ttl",
        key=key,
        namespace=namespace,
        field="extend_by",
    ),
}
