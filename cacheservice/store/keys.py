"""Every Redis key name the service uses is built here.

A namespace is spread over ``buckets`` hash slots and each entry's data lives in one of them:

    cs:{<ns>:<bucket>}:e:<key>   entry hash (value, header fields, metadata)
    cs:{<ns>:<bucket>}:t:<tag>   tag index: sorted set of keys scored by expiry (ms, +inf)
    cs:{<ns>:<bucket>}:idx       namespace index: sorted set of keys scored by expiry
    cs:{<ns>:<bucket>}:tags      tag registry: the bucket's tags scored by their latest expiry
    cs:{<ns>:<bucket>}:prune     pruning state: where the walk over the tag registry stands
    cs:{<ns>:<bucket>}:fh        pending hit counts per key, for the statistics flush
    cs:{<ns>:<bucket>}:fa        pending last-access times per key (ms)
    cs:{<ns>:<bucket>}:fm        keys whose metadata changed since the last flush
    cs:{<ns>:<bucket>}:fb        id of the entry-stats batch being flushed (absent: none)
    cs:{<ns>:<bucket>}:fb:<id>:h|a|m   that batch: the fh, fa and fm it took over

Service-wide keys, each group in one slot of its own:

    cs:{metrics}:pending         metric deltas pushed by web processes, not yet flushed
    cs:{metrics}:push:<id>       marker making one push idempotent
    cs:{metrics}:namespaces      every namespace that has seen traffic
    cs:{metrics}:inflight        id of the metrics batch being flushed
    cs:{metrics}:batch:<id>:p    that batch (kept a minute after it is applied)
    cs:{metrics}:done            ids of batches applied in the last minute, scored by time
    cs:{flush}:lock:<task>       overlap lock of a periodic task
    cs:{flush}:last:<task>       when the task last completed (ms)
    cs:{health}:probes           health probe results per hour, for the uptime figure
    cs:{ss:<2 hex>}:s:<secret>   a session's hot copy (hash); the id is "<2 hex>.<secret>"
    cs:{ss:<2 hex>}:u:<user id>  a user's sessions: sorted set of session ids by expiry (ms)
    cs:{ss:<2 hex>}:r:<secret>   marks a revoked session for a day (no refill brings it back)
    cs:{ss:<2 hex>}:sv:<secret>  the newest session version written in the last minute
    cs:{ss:<2 hex>}:sa           pending session access times, flushed to Postgres
    cs:{ss:<2 hex>}:sb[:<id>:a]  the access batch being flushed
    cs:{stats}:memory            sampled memory per entry, per namespace

Everything inside the braces is the Redis Cluster hash tag, so one bucket is one slot and every
Lua script touches a single slot. Namespaces cannot contain ``:`` or ``}``, so names cannot
collide. Lua scripts receive the bucket prefix and build the tag-index names themselves with
the same suffixes as below.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

PREFIX = "cs"


def bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % buckets


@dataclass(frozen=True)
class Bucket:
    """The key names of one slot of one namespace."""

    namespace: str
    number: int

    @property
    def prefix(self) -> str:
        return f"{PREFIX}:{{{self.namespace}:{self.number}}}:"

    def entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def tag(self, tag: str) -> str:
        return f"{self.prefix}t:{tag}"

    @property
    def index(self) -> str:
        return f"{self.prefix}idx"

    @property
    def tag_registry(self) -> str:
        return f"{self.prefix}tags"

    @property
    def prune_state(self) -> str:
        return f"{self.prefix}prune"

    @property
    def flush_pointer(self) -> str:
        return f"{self.prefix}fb"

    @property
    def flush_batch_prefix(self) -> str:
        return f"{self.prefix}fb:"

    @property
    def pending_hits(self) -> str:
        return f"{self.prefix}fh"

    @property
    def pending_access(self) -> str:
        return f"{self.prefix}fa"

    @property
    def pending_metadata(self) -> str:
        return f"{self.prefix}fm"


class KeySpace:
    """Maps (namespace, key) to its bucket for one deployment's bucket count."""

    def __init__(self, buckets: int) -> None:
        self.buckets = buckets

    def bucket(self, namespace: str, key: str) -> Bucket:
        return Bucket(namespace, bucket_of(key, self.buckets))

    def all_buckets(self, namespace: str) -> list[Bucket]:
        return [Bucket(namespace, number) for number in range(self.buckets)]


class MetricsKeys:
    """Names of the service-wide metrics pipeline keys (one slot: ``{metrics}``)."""

    pending = f"{PREFIX}:{{metrics}}:pending"
    namespaces = f"{PREFIX}:{{metrics}}:namespaces"
    inflight = f"{PREFIX}:{{metrics}}:inflight"
    done = f"{PREFIX}:{{metrics}}:done"
    batch_prefix = f"{PREFIX}:{{metrics}}:batch:"

    @staticmethod
    def push_marker(push_id: str) -> str:
        return f"{PREFIX}:{{metrics}}:push:{push_id}"


class TaskKeys:
    """Overlap locks and completion times of the periodic tasks."""

    @staticmethod
    def lock(task: str) -> str:
        return f"{PREFIX}:{{flush}}:lock:{task}"

    @staticmethod
    def last_run(task: str) -> str:
        return f"{PREFIX}:{{flush}}:last:{task}"


HEALTH_PROBES = f"{PREFIX}:{{health}}:probes"
MEMORY_SAMPLES = f"{PREFIX}:{{stats}}:memory"


SESSION_BUCKETS = 256


@dataclass(frozen=True)
class SessionBucket:
    """The slot a user's sessions and session index share: ``cs:{ss:<2 hex>}:...``.

    The bucket comes from the user id and is also the first part of each session id
    (``3f.<secret>``), so a session's hash is found from its id alone and lives in the same
    slot as its user's index: every session script touches one slot.
    """

    number: int

    @classmethod
    def of_user(cls, user_id: str) -> SessionBucket:
        digest = hashlib.blake2b(user_id.encode(), digest_size=2).digest()
        return cls(digest[0] % SESSION_BUCKETS)

    @property
    def label(self) -> str:
        return f"{self.number:02x}"

    @property
    def prefix(self) -> str:
        return f"{PREFIX}:{{ss:{self.label}}}:"

    @property
    def session_prefix(self) -> str:
        return f"{self.prefix}s:"

    def session(self, secret: str) -> str:
        return f"{self.session_prefix}{secret}"

    def version(self, secret: str) -> str:
        return f"{self.prefix}sv:{secret}"

    @property
    def revoked_prefix(self) -> str:
        return f"{self.prefix}r:"

    def revoked(self, secret: str) -> str:
        return f"{self.revoked_prefix}{secret}"

    @property
    def user_prefix(self) -> str:
        return f"{self.prefix}u:"

    def user_index(self, user_id: str) -> str:
        return f"{self.user_prefix}{user_id}"

    @property
    def pending_access(self) -> str:
        return f"{self.prefix}sa"

    @property
    def flush_pointer(self) -> str:
        return f"{self.prefix}sb"

    @property
    def flush_batch_prefix(self) -> str:
        return f"{self.prefix}sb:"
