"""Cutting expired members out of a namespace's indexes.

Entries expire inside Redis by themselves; their index memberships are scored by the same
expiry, so removing every member scored before "now" is exact. The work per bucket is bounded
so that a backlog never blocks Redis; the periodic task simply runs again.
"""

from __future__ import annotations

import redis

from cacheservice.store.keys import KeySpace
from cacheservice.store.scripts import ScriptCall, Scripts

DEFAULT_BUDGET_PER_BUCKET = 1000


def prune_namespace(
    client: redis.Redis,
    keyspace: KeySpace,
    namespace: str,
    now_ms: int,
    budget_per_bucket: int = DEFAULT_BUDGET_PER_BUCKET,
) -> int:
    """Remove expired index members of ``namespace``; returns how many were removed."""
    calls = [
        ScriptCall(Scripts.prune_bucket, [bucket.index], [bucket.prefix, now_ms, budget_per_bucket])
        for bucket in keyspace.all_buckets(namespace)
    ]
    return sum(int(removed) for removed in Scripts(client).run_pipelined(calls))
