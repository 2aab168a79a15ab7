"""Invalidation by tags, glob pattern, explicit keys or whole namespace.

Candidates are found by scanning the namespace's indexes bucket by bucket (``ZSCAN``, which
returns every member present for the whole scan, with ``MATCH`` doing the glob in Redis), and
each chunk is deleted by a script that re-checks the filter against the entry as it is at that
moment. So every matching entry written before the call began is gone when it returns, the
count is exact (an entry is counted by the one script call that deleted it), and no step
blocks Redis for longer than one chunk.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis

from cacheservice.store.glob import GlobPattern
from cacheservice.store.keys import Bucket, KeySpace
from cacheservice.store.scripts import ScriptCall, Scripts

# Candidates per scan step and per script call. Each candidate costs the script a few commands
# per tag (up to 32 tags), so 100 keeps one call to a few milliseconds of Redis time.
SCAN_CHUNK = 100


@dataclass(frozen=True)
class Selection:
    """Which entries of a namespace to invalidate; the given criteria intersect."""

    tags: tuple[str, ...] = ()
    match_all_tags: bool = False
    pattern: GlobPattern | None = None
    keys: tuple[str, ...] | None = None


@dataclass
class Invalidated:
    total: int = 0
    keys: list[str] = field(default_factory=list)
    truncated: bool = False


@dataclass
class _Scan:
    bucket: Bucket
    index: str
    scanned_tag: str
    cursor: int = 0


class Invalidator:
    def __init__(self, client: redis.Redis, keyspace: KeySpace) -> None:
        self.client = client
        self.scripts = Scripts(client)
        self.keyspace = keyspace

    def invalidate(self, namespace: str, selection: Selection, list_limit: int) -> Invalidated:
        result = Invalidated()
        if selection.keys is not None:
            self._invalidate_listed(namespace, selection, list_limit, result)
        else:
            self._invalidate_scanned(namespace, selection, list_limit, result)
        result.truncated = result.total > len(result.keys)
        return result

    def _tag_args(self, selection: Selection) -> list[str | int]:
        if not selection.tags:
            return ["none", 0]
        return ["all" if selection.match_all_tags else "any", len(selection.tags), *selection.tags]

    def _call(
        self,
        bucket: Bucket,
        selection: Selection,
        scanned_tag: str,
        limit: int,
        keys: Sequence[str],
    ) -> ScriptCall:
        return ScriptCall(
            Scripts.invalidate_keys,
            [bucket.index],
            [bucket.prefix, *self._tag_args(selection), scanned_tag, limit, *keys],
        )

    def _apply(self, calls: list[ScriptCall], list_limit: int, result: Invalidated) -> None:
        if not calls:
            return
        for reply in self.scripts.run_pipelined(calls):
            result.total += int(reply[0])
            room = list_limit - len(result.keys)
            if room > 0:
                result.keys.extend(key.decode("utf-8") for key in reply[1 : 1 + room])

    def _invalidate_listed(
        self, namespace: str, selection: Selection, list_limit: int, result: Invalidated
    ) -> None:
        by_bucket: dict[Bucket, list[str]] = defaultdict(list)
        for key in dict.fromkeys(selection.keys or ()):
            if selection.pattern is None or selection.pattern.matches(key):
                by_bucket[self.keyspace.bucket(namespace, key)].append(key)
        calls = [
            self._call(bucket, selection, "", list_limit, keys[start : start + SCAN_CHUNK])
            for bucket, keys in by_bucket.items()
            for start in range(0, len(keys), SCAN_CHUNK)
        ]
        self._apply(calls, list_limit, result)

    def _scans(self, namespace: str, selection: Selection) -> list[_Scan]:
        buckets = self.keyspace.all_buckets(namespace)
        if not selection.tags:
            return [_Scan(bucket, bucket.index, "") for bucket in buckets]
        # With "all", every match carries the first tag, so its index holds every candidate.
        scanned = selection.tags[:1] if selection.match_all_tags else selection.tags
        return [_Scan(bucket, bucket.tag(tag), tag) for bucket in buckets for tag in scanned]

    def _invalidate_scanned(
        self, namespace: str, selection: Selection, list_limit: int, result: Invalidated
    ) -> None:
        match = selection.pattern.raw if selection.pattern is not None else None
        active = self._scans(namespace, selection)
        while active:
            pipe = self.client.pipeline(transaction=False)
            for scan in active:
                pipe.zscan(scan.index, scan.cursor, match=match, count=SCAN_CHUNK)
            calls: list[ScriptCall] = []
            still_active: list[_Scan] = []
            for scan, (cursor, members) in zip(active, pipe.execute(), strict=True):
                scan.cursor = int(cursor)
                if members:
                    keys = [member.decode("utf-8") for member, _score in members]
                    calls.append(
                        self._call(scan.bucket, selection, scan.scanned_tag, list_limit, keys)
                    )
                if scan.cursor != 0:
                    still_active.append(scan)
            self._apply(calls, list_limit, result)
            active = still_active
