"""Cutting expired members out of a namespace's indexes.

Entries expire inside Redis by themselves; their index memberships are scored by the same
expiry, so removing every member scored before "now" (Redis's clock) is exact. The work per
bucket and call is bounded so that a backlog never blocks Redis; the periodic task simply runs
again, and tag indexes are visited in turn across calls.
"""

from __future__ import annotations

import redis

from cacheservice.store.keys import KeySpace
from cacheservice.store.scripts import ScriptCall, Scripts

DEFAULT_BUDGET_PER_BUCKET = 1000
TAGS_VISITED_PER_CALL = 100


def prune_namespace(
    client: redis.Redis,
    keyspace: KeySpace,
    namespace: str,
    budget_per_bucket: int = DEFAULT_BUDGET_PER_BUCKET,
) -> int:
    """Remove expired index members of ``namespace``; returns how many were removed."""
    calls = [
        ScriptCall(
            Scripts.prune_bucket,
            [bucket.index],
            [bucket.prefix, budget_per_bucket, TAGS_VISITED_PER_CALL],
        )
        for bucket in keyspace.all_buckets(namespace)
    ]
    return sum(int(removed) for removed in Scripts(client).run_pipelined(calls))
