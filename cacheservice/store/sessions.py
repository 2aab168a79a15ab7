"""The Redis side of sessions: hot copies, per-user indexes, pending access times.

Every call touches one session bucket (one hash slot), named by the first part of the
session id, which is derived from the user id.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from cacheservice.store.keys import SESSION_BUCKETS, SessionBucket
from cacheservice.store.ratelimit import LimitCheck
from cacheservice.store.scripts import ScriptCall, Scripts

# How long a revoked session stays marked so that no late refill can bring it back: far longer
# than any read or PATCH that fetched the row before the revocation can take.
REVOKED_MARKER_SECONDS = 24 * 3600

SESSION_ID = re.compile(r"([0-9a-f]{2})\.([A-Za-z0-9_-]{32})")


def parse_session_id(session_id: str) -> tuple[SessionBucket, str] | None:
    """The bucket and secret of a well-formed session id, else None (never found)."""
    found = SESSION_ID.fullmatch(session_id)
    if found is None:
        return None
    return SessionBucket(int(found.group(1), 16)), found.group(2)


@dataclass(frozen=True)
class HotSession:
    """A session as Redis holds it; times in milliseconds."""

    session_id: str
    user_id: str
    data: bytes  # JSON text
    ttl: int
    created_ms: int
    updated_ms: int
    last_access_ms: int
    expires_ms: int

    @classmethod
    def from_fields(cls, session_id: str, flat: Sequence[bytes]) -> HotSession:
        fields = dict(zip(flat[::2], flat[1::2], strict=True))
        return cls(
            session_id=session_id,
            user_id=fields[b"u"].decode(),
            data=fields[b"d"],
            ttl=int(fields[b"ttl"]),
            created_ms=int(fields[b"ca"]),
            updated_ms=int(fields[b"ua"]),
            last_access_ms=int(fields[b"la"]),
            expires_ms=int(fields[b"ex"]),
        )


class SessionStore:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.scripts = Scripts(client)

    def get(
        self,
        session_id: str,
        now_ms: int,
        touch: bool,
        guard: LimitCheck | None = None,
    ) -> HotSession | None:
        """Read (and slide) a session: one script call, with the rate limit check folded in."""
        parsed = parse_session_id(session_id)
        if parsed is None:
            return None
        bucket, secret = parsed
        call = ScriptCall(
            Scripts.session_get,
            [bucket.session(secret), bucket.pending_access],
            [session_id, now_ms, "1" if touch else "0", bucket.user_prefix],
        )
        if guard is None:
            reply = self.scripts.run(call)
        else:
            guarded = self.scripts.run(
                ScriptCall(
                    Scripts.guarded_session_get,
                    [*guard.script_keys(), *call.keys],
                    [*guard.script_args(now_ms), *call.args],
                )
            )
            guard.settle(guarded[0])
            reply = guarded[1]
        return HotSession.from_fields(session_id, reply) if reply else None

    def put(self, session: HotSession, version: int, restart: bool = False) -> HotSession | None:
        """Write the hot copy of a committed row, unless Redis holds a newer one (then None).

        A later access time and expiry a read has slid in Redis are kept, except that the
        expiry is the row's when it restarts it (``restart``: a new ttl). Returns the copy as
        written.
        """
        parsed = parse_session_id(session.session_id)
        if parsed is None:
            raise ValueError(f"malformed session id {session.session_id[:6]}...")
        bucket, secret = parsed
        fields: list[Any] = [
            "u", session.user_id,
            "d", session.data,
            "ttl", session.ttl,
            "ca", session.created_ms,
            "ua", session.updated_ms,
            "la", session.last_access_ms,
            "ex", session.expires_ms,
        ]  # fmt: skip
        call = ScriptCall(
            Scripts.session_put,
            [
                bucket.session(secret),
                bucket.user_index(session.user_id),
                bucket.pending_access,
                bucket.revoked(secret),
                bucket.version(secret),
            ],
            [session.session_id, version, session.expires_ms, "1" if restart else "0", *fields],
        )
        written = self.scripts.run(call)
        if not written:
            return None
        return replace(session, last_access_ms=int(written[0]), expires_ms=int(written[1]))

    def delete(self, user_id: str, session_ids: Sequence[str]) -> int:
        bucket = SessionBucket.of_user(user_id)
        if not session_ids:
            return 0
        call = ScriptCall(
            Scripts.session_delete,
            [bucket.user_index(user_id)],
            [bucket.session_prefix, bucket.revoked_prefix, REVOKED_MARKER_SECONDS, *session_ids],
        )
        return int(self.scripts.run(call))

    def user_session_ids(self, user_id: str) -> list[str]:
        bucket = SessionBucket.of_user(user_id)
        return [
            member.decode() if isinstance(member, bytes) else str(member)
            for member in self.client.zrange(bucket.user_index(user_id), 0, -1)
        ]

    def list_user(self, user_id: str, now_ms: int) -> list[HotSession]:
        bucket = SessionBucket.of_user(user_id)
        call = ScriptCall(
            Scripts.session_list, [bucket.user_index(user_id)], [bucket.session_prefix, now_ms]
        )
        reply = self.scripts.run(call)
        return [
            HotSession.from_fields(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)
        ]

    def prune_user_indexes(self, user_ids: Sequence[str], now_ms: int) -> None:
        pipe = self.client.pipeline(transaction=False)
        for user_id in set(user_ids):
            bucket = SessionBucket.of_user(user_id)
            pipe.zremrangebyscore(bucket.user_index(user_id), "-inf", f"({now_ms}")
        pipe.execute()

    # The access flush (same protocol as entry statistics, applied idempotently).

    def all_buckets(self) -> list[SessionBucket]:
        return [SessionBucket(number) for number in range(SESSION_BUCKETS)]
