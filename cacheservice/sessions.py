"""User sessions: durable in Postgres, served hot from Redis.

Writes go to Postgres in the request (the source of truth) and then to Redis; reads come from
Redis in one round trip (read and slide together), fall back to Postgres on a miss (only for
unexpired sessions) and refill Redis. Sliding refreshes reach Postgres through the workers.
Deletion removes the hot copy, then the row, then the hot copy again: a read that refilled
Redis from the row in between cannot leave a revoked session alive.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import redis
from psycopg.types.json import Jsonb

from cacheservice.db import Database
from cacheservice.errors import InvalidRequest, ServiceError
from cacheservice.jsonio import dumps_value
from cacheservice.store.keys import SessionBucket
from cacheservice.store.ratelimit import LimitCheck
from cacheservice.store.scripts import ScriptCall, Scripts
from cacheservice.store.sessions import HotSession, SessionStore, parse_session_id
from cacheservice.timefmt import now_ms

log = logging.getLogger(__name__)

SECRET_BYTES = 24  # 192 bits from the operating system's CSPRNG.
MAX_DATA_BYTES = 1024 * 1024


class SessionNotFound(ServiceError):
    status = 404
    code = "session_not_found"
    message = "Session not found"


def new_session_id(user_id: str) -> str:
    """``<bucket>.<secret>``: the bucket (from the user id) routes it, the secret guards it."""
    return f"{SessionBucket.of_user(user_id).label}.{secrets.token_urlsafe(SECRET_BYTES)}"


def redacted(session_id: str) -> str:
    """What logs may show of a session id."""
    return session_id[:7] + "..."


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _hot(row: tuple[Any, ...]) -> HotSession:
    session_id, user_id, data, ttl, created, updated, last_access, expires = row
    return HotSession(
        session_id=session_id,
        user_id=str(user_id),
        data=dumps_value(data),
        ttl=int(ttl),
        created_ms=_ms(created),
        updated_ms=_ms(updated),
        last_access_ms=_ms(last_access or created),
        expires_ms=_ms(expires),
    )


@dataclass(frozen=True)
class Session:
    session_id: str
    user_id: str
    data: Any  # orjson.Fragment of the stored JSON text
    ttl: int
    created_ms: int
    last_access_ms: int
    expires_ms: int

    @classmethod
    def of(cls, hot: HotSession) -> Session:
        return cls(
            hot.session_id,
            hot.user_id,
            orjson.Fragment(hot.data),
            hot.ttl,
            hot.created_ms,
            hot.last_access_ms,
            hot.expires_ms,
        )


class Sessions:
    def __init__(self, store: SessionStore, database: Database, queries: dict[str, str]) -> None:
        self.store = store
        self.database = database
        self.queries = queries

    def _refill(self, row: tuple[Any, ...], restart: bool = False) -> HotSession:
        hot = _hot(row)
        try:
            return self.store.put(hot, _micros(row[5]), restart) or hot
        except redis.RedisError as error:
            # The row is committed: the session exists. Redis is refilled on the next read.
            log.warning(
                "session %s not cached, Redis unavailable: %s", redacted(hot.session_id), error
            )
        return hot

    def create(self, user_id: str, data: dict[str, Any], ttl: int) -> Session:
        check_data_size(data)
        session_id = new_session_id(user_id)
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["insert_session"],
                {"session_id": session_id, "user_id": user_id, "data": Jsonb(data), "ttl": ttl},
            ).fetchone()
        if row is None:
            raise RuntimeError("INSERT ... RETURNING returned no row")
        return Session.of(self._refill(row))

    def get(self, session_id: str, touch: bool, guard: LimitCheck | None = None) -> Session:
        if parse_session_id(session_id) is None:
            raise SessionNotFound(session_id=redacted(session_id))
        try:
            hot = self.store.get(session_id, now_ms(), touch, guard)
        except (redis.ConnectionError, redis.TimeoutError):
            # Redis is down or hangs: a login must still work. Read (and slide) in Postgres.
            return Session.of(self._from_database(session_id, touch, refill=False))
        if hot is None:
            hot = self._from_database(session_id, touch, refill=True)
        return Session.of(hot)

    def _from_database(self, session_id: str, touch: bool, refill: bool) -> HotSession:
        query = "touch_session" if touch else "live_session"
        with self.database.connection() as conn:
            row = conn.execute(self.queries[query], {"session_id": session_id}).fetchone()
        if row is None:
            raise SessionNotFound(session_id=redacted(session_id))
        return self._refill(row) if refill else _hot(row)

    def update(self, session_id: str, data: dict[str, Any] | None, ttl: int | None) -> Session:
        parsed = parse_session_id(session_id)
        if parsed is None:
            raise SessionNotFound(session_id=redacted(session_id))
        bucket, secret = parsed
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["update_session"],
                {
                    "session_id": session_id,
                    "data": Jsonb(data or {}),
                    "ttl": ttl,
                    "hot_expires_at": self._hot_expiry(bucket.session(secret)),
                },
            ).fetchone()
            if row is not None:
                check_data_size(row[2])
        if row is None:
            raise SessionNotFound(session_id=redacted(session_id))
        return Session.of(self._refill(row, restart=ttl is not None))

    def _hot_expiry(self, session_key: str) -> datetime | None:
        """The expiry reads have slid the hot copy to (Postgres learns it only at the next
        flush); None when Redis has no copy or cannot be asked."""
        try:
            raw = self.store.client.hget(session_key, "ex")
        except redis.RedisError:
            return None
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC) if raw else None

    def delete(self, session_id: str) -> None:
        parsed = parse_session_id(session_id)
        if parsed is None:
            raise SessionNotFound(session_id=redacted(session_id))
        bucket, secret = parsed
        owner = self.store.client.hget(bucket.session(secret), "u")
        cached_user = owner.decode() if isinstance(owner, bytes) else owner
        if cached_user is not None:
            self.store.delete(cached_user, [session_id])
        with self.database.connection() as conn:
            row = conn.execute(
                self.queries["delete_session"], {"session_id": session_id}
            ).fetchone()
        if row is not None:
            # Again: a read may have refilled Redis from the row between the two steps above.
            self.store.delete(str(row[1]), [session_id])
        was_live = cached_user is not None or (row is not None and bool(row[2]))
        if not was_live:
            raise SessionNotFound(session_id=redacted(session_id))

    def list_user(self, user_id: str) -> list[Session]:
        """Live sessions of a user: Redis's hot copies, plus any only Postgres still has."""
        hot = {session.session_id: session for session in self.store.list_user(user_id, now_ms())}
        with self.database.connection() as conn:
            rows = conn.execute(self.queries["live_user_sessions"], {"user_id": user_id}).fetchall()
        for row in rows:
            if row[0] not in hot:
                hot[row[0]] = self._refill(row)
        return sorted((Session.of(s) for s in hot.values()), key=lambda s: s.created_ms)

    def revoke_user(self, user_id: str) -> int:
        """Delete every session of a user from Redis and Postgres; how many were live."""
        in_redis = self.store.user_session_ids(user_id)
        live = {session.session_id for session in self.store.list_user(user_id, now_ms())}
        self.store.delete(user_id, in_redis)
        with self.database.connection() as conn:
            rows = conn.execute(
                self.queries["delete_user_sessions"], {"user_id": user_id}
            ).fetchall()
        self.store.delete(user_id, [row[0] for row in rows])
        live |= {row[0] for row in rows if row[1]}
        return len(live)


def check_data_size(data: Any) -> None:
    size = len(dumps_value(data))
    if size > MAX_DATA_BYTES:
        raise InvalidRequest("Session data is too large", size_bytes=size, max_bytes=MAX_DATA_BYTES)


def flush_session_access(client: redis.Redis, database: Database, queries: dict[str, str]) -> int:
    """Bring slid expiries and last access times of sessions to Postgres.

    The same hand-over as the entry statistics (claim a batch, apply, then drop it); applying
    a batch twice is harmless here (GREATEST), so no batch ledger is needed.
    """
    scripts = Scripts(client)
    buckets = SessionStore(client).all_buckets()
    claims = [
        ScriptCall(
            Scripts.claim_batch,
            [bucket.flush_pointer, bucket.pending_access],
            [bucket.flush_batch_prefix, secrets.token_hex(8), "a"],
        )
        for bucket in buckets
    ]
    moved = 0
    for bucket, batch_id in zip(buckets, scripts.run_pipelined(claims), strict=True):
        if not batch_id:
            continue
        batch = batch_id.decode()
        ids: list[str] = []
        accessed: list[datetime] = []
        expires: list[datetime] = []
        for field, value in client.hscan_iter(f"{bucket.flush_batch_prefix}{batch}:a", count=1000):
            last_access, expiry = value.decode().split(":")
            ids.append(field.decode())
            accessed.append(datetime.fromtimestamp(int(last_access) / 1000, tz=UTC))
            expires.append(datetime.fromtimestamp(int(expiry) / 1000, tz=UTC))
        if ids:
            with database.connection() as conn:
                conn.execute(
                    queries["record_session_access"],
                    {"session_ids": ids, "last_accessed": accessed, "expires_at": expires},
                )
        scripts.run(
            ScriptCall(
                Scripts.finish_batch,
                [bucket.flush_pointer],
                [bucket.flush_batch_prefix, batch, "a"],
            )
        )
        moved += len(ids)
    return moved


def cleanup_expired_sessions(
    store: SessionStore, database: Database, queries: dict[str, str], grace_seconds: int, limit: int
) -> int:
    """Delete rows expired longer than the grace period and prune their users' indexes."""
    with database.connection() as conn:
        rows = conn.execute(
            queries["delete_expired_sessions"], {"grace_seconds": grace_seconds, "limit": limit}
        ).fetchall()
    if rows:
        store.prune_user_indexes([str(row[1]) for row in rows], now_ms())
    return len(rows)
