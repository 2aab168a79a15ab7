"""Sessions are durable: Postgres is the truth, Redis the hot copy.

A flushed or dead Redis loses no live session and resurrects no expired or revoked one;
concurrent PATCHes of different fields all survive, with Redis agreeing with Postgres; the
workers' access flush and cleanup move slid expiries to Postgres and remove expired rows.
Redis outages run against a private ``redis-server`` that the test kills.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app, sessions
from cacheservice.services import Services
from cacheservice.store.keys import SessionBucket
from cacheservice.store.scripts import ScriptCall, Scripts
from cacheservice.store.sessions import SessionStore, parse_session_id
from cacheservice.timefmt import to_ms
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.redis_server import RedisServer

RECOVERY_TIMEOUT_SECONDS = 10.0


def new_user() -> str:
    return str(uuid.uuid4())


def create(
    http: FlaskClient, user_id: str, data: dict[str, Any] | None = None, ttl: int = 600
) -> dict[str, Any]:
    response = http.post("/sessions", json={"user_id": user_id, "data": data or {}, "ttl": ttl})
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def hot_key(session_id: str) -> str:
    parsed = parse_session_id(session_id)
    assert parsed is not None
    bucket, secret = parsed
    return bucket.session(secret)


def services_of(app: Flask) -> Services:
    found: Services = app.extensions["cacheservice"]
    return found


def row(database: psycopg.Connection[Any], session_id: str) -> tuple[Any, ...] | None:
    """(data, ttl, last_accessed, expires_at) of a session's row."""
    return database.execute(
        "SELECT data, ttl, last_accessed, expires_at FROM cache_sessions WHERE session_id = %s",
        (session_id,),
    ).fetchone()


def ms(moment: datetime) -> int:
    return to_ms(moment)


# Redis flushed


def test_live_sessions_survive_a_flushdb_and_are_cached_again(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    created = [create(client, user, {"n": n, "nested": {"k": [n]}}) for n in range(3)]
    patched = client.patch(f"/sessions/{created[0]['session_id']}", json={"data": {"n": 10}})
    assert patched.status_code == 200
    expected = [{"n": 10, "nested": {"k": [0]}}, {"n": 1, "nested": {"k": [1]}}]
    expected.append({"n": 2, "nested": {"k": [2]}})

    redis_client.flushdb()

    for session, data in zip(created, expected, strict=True):
        key = hot_key(session["session_id"])
        assert redis_client.exists(key) == 0
        response = client.get(f"/sessions/{session['session_id']}?touch=false")
        assert response.status_code == 200
        body = response.get_json()
        assert body["data"] == data
        assert body["user_id"] == user
        assert body["created_at"] == session["created_at"]
        assert body["expires_at"] == session["expires_at"]
        # Refilled: the hash is back, with its expiry and its place in the user's index.
        assert redis_client.exists(key) == 1
        assert 0 < redis_client.pttl(key) <= 600_000
        index = SessionBucket.of_user(user).user_index(user)
        assert redis_client.zscore(index, session["session_id"]) is not None
        # Served from Redis from now on.
        assert client.get(f"/sessions/{session['session_id']}").get_json()["data"] == data

    assert client.get(f"/users/{user}/sessions").get_json()["total"] == 3


def test_the_user_list_is_rebuilt_from_postgres_after_a_flushdb(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    ids = [create(client, user, {"n": n})["session_id"] for n in range(3)]
    redis_client.flushdb()

    listed = client.get(f"/users/{user}/sessions").get_json()

    assert [s["session_id"] for s in listed["sessions"]] == ids
    assert [s["data"] for s in listed["sessions"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(redis_client.exists(hot_key(session_id)) == 1 for session_id in ids)
    assert client.delete(f"/users/{user}/sessions").get_json()["revoked"] == 3


def test_an_expired_session_is_not_resurrected_after_a_flushdb(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    short = create(client, user, {"a": 1}, ttl=1)["session_id"]
    long = create(client, user, {"b": 2}, ttl=600)["session_id"]
    time.sleep(1.3)

    redis_client.flushdb()

    assert client.get(f"/sessions/{short}").status_code == 404
    assert client.get(f"/sessions/{short}?touch=false").status_code == 404
    assert client.patch(f"/sessions/{short}", json={"data": {"c": 3}}).status_code == 404
    assert redis_client.exists(hot_key(short)) == 0
    listed = client.get(f"/users/{user}/sessions").get_json()
    assert [s["session_id"] for s in listed["sessions"]] == [long]
    assert redis_client.exists(hot_key(short)) == 0
    assert row(database, short) is not None  # Until the cleanup's grace period is over.


def test_a_deleted_session_is_not_resurrected_after_a_flushdb(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    session_id = create(client, new_user(), {"a": 1})["session_id"]
    assert client.delete(f"/sessions/{session_id}").status_code == 200

    redis_client.flushdb()

    assert client.get(f"/sessions/{session_id}").status_code == 404
    assert row(database, session_id) is None


# Concurrent writers


def test_concurrent_patches_of_different_fields_all_survive(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    writers, rounds = 4, 25
    session_id = create(client, new_user(), {"base": True})["session_id"]
    barrier = threading.Barrier(writers)
    failures: list[str] = []

    def write(writer: int) -> None:
        http = authorized_client(app, sub=f"writer-{writer}")
        for n in range(rounds):
            try:
                barrier.wait(timeout=10)
            except threading.BrokenBarrierError:
                failures.append(f"writer {writer}: barrier broken")
                return
            response = http.patch(
                f"/sessions/{session_id}", json={"data": {f"w{writer}": n, f"w{writer}r{n}": n}}
            )
            if response.status_code != 200:
                failures.append(f"writer {writer} round {n}: {response.status_code}")

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    expected: dict[str, Any] = {"base": True}
    for writer in range(writers):
        expected[f"w{writer}"] = rounds - 1
        expected.update({f"w{writer}r{n}": n for n in range(rounds)})
    stored = row(database, session_id)
    assert stored is not None
    assert stored[0] == expected
    # The hot copy agrees with Postgres: the last committed version won in Redis too.
    hot = client.get(f"/sessions/{session_id}?touch=false")
    assert hot.get_json()["data"] == expected
    assert redis_client.exists(hot_key(session_id)) == 1
    version = redis_client.hget(hot_key(session_id), "v")
    (updated_at,) = database.execute(
        "SELECT updated_at FROM cache_sessions WHERE session_id = %s", (session_id,)
    ).fetchone() or (None,)
    assert version is not None
    assert updated_at is not None
    assert int(version) == int(updated_at.timestamp() * 1_000_000)


def test_concurrent_reads_and_patches_keep_every_field(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    """Readers refilling Redis from Postgres (after flushes) never put older data back."""
    session_id = create(client, new_user(), {})["session_id"]
    done = threading.Event()
    failures: list[str] = []

    def read() -> None:
        http = authorized_client(app, sub="reader")
        while not done.is_set():
            response = http.get(f"/sessions/{session_id}?touch=false")
            if response.status_code != 200:
                failures.append(f"read: {response.status_code}")

    def flush() -> None:
        while not done.is_set():
            redis_client.delete(hot_key(session_id))
            time.sleep(0.002)

    helpers = [threading.Thread(target=read), threading.Thread(target=read)]
    helpers.append(threading.Thread(target=flush))
    for thread in helpers:
        thread.start()
    try:
        for n in range(40):
            response = client.patch(f"/sessions/{session_id}", json={"data": {f"k{n}": n}})
            assert response.status_code == 200
            assert set(response.get_json()["data"]) == {f"k{m}" for m in range(n + 1)}
    finally:
        done.set()
        for thread in helpers:
            thread.join(timeout=30)

    assert failures == []
    expected = {f"k{n}": n for n in range(40)}
    assert client.get(f"/sessions/{session_id}?touch=false").get_json()["data"] == expected
    stored = row(database, session_id)
    assert stored is not None
    assert stored[0] == expected


# The workers' side: access flush and cleanup


def test_flush_session_access_moves_slid_expiries_to_postgres(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    session_id = create(client, user, {"a": 1}, ttl=5)["session_id"]
    untouched = create(client, user, {"b": 2}, ttl=5)["session_id"]
    before = row(database, session_id)
    before_other = row(database, untouched)
    assert before is not None
    time.sleep(0.3)
    assert client.get(f"/sessions/{untouched}?touch=false").status_code == 200

    read = client.get(f"/sessions/{session_id}")
    assert read.status_code == 200
    slid_ex = int(redis_client.hget(hot_key(session_id), "ex") or 0)
    slid_la = int(redis_client.hget(hot_key(session_id), "la") or 0)
    assert slid_ex >= ms(before[3]) + 300

    svc = services_of(app)
    moved = sessions.flush_session_access(svc.redis, svc.database, svc.queries)

    assert moved == 1
    after = row(database, session_id)
    assert after is not None
    assert ms(after[3]) == slid_ex
    assert ms(after[2]) == slid_la
    assert after[3].strftime("%Y-%m-%dT%H:%M:%SZ") == read.get_json()["expires_at"]
    assert row(database, untouched) == before_other
    # Nothing pending is left; a second run moves nothing.
    bucket = SessionBucket.of_user(user)
    assert redis_client.exists(bucket.pending_access, bucket.flush_pointer) == 0
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 0

    # A slid session outlives its original expiry even when Redis loses it.
    redis_client.flushdb()
    assert client.get(f"/sessions/{session_id}?touch=false").status_code == 200


def test_a_crash_between_postgres_and_the_end_of_the_batch_is_harmless(
    app: Flask,
    client: FlaskClient,
    redis_client: redis.Redis,
    database: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = new_user()
    session_id = create(client, user, {"a": 1}, ttl=5)["session_id"]
    svc = services_of(app)
    assert client.get(f"/sessions/{session_id}").status_code == 200
    first_ex = int(redis_client.hget(hot_key(session_id), "ex") or 0)

    real_run = Scripts.run

    def crash_before_finishing(self: Scripts, call: ScriptCall) -> Any:
        if call.script is Scripts.finish_batch:
            raise RuntimeError("worker killed")
        return real_run(self, call)

    with monkeypatch.context() as patch:
        patch.setattr(Scripts, "run", crash_before_finishing)
        with pytest.raises(RuntimeError, match="worker killed"):
            sessions.flush_session_access(svc.redis, svc.database, svc.queries)

    applied = row(database, session_id)
    assert applied is not None
    assert ms(applied[3]) == first_ex
    bucket = SessionBucket.of_user(user)
    assert redis_client.exists(bucket.flush_pointer) == 1  # The batch is still in flight.

    # Meanwhile the session slides again: that lands in a new pending batch.
    time.sleep(0.2)
    assert client.get(f"/sessions/{session_id}").status_code == 200
    second_ex = int(redis_client.hget(hot_key(session_id), "ex") or 0)
    assert second_ex > first_ex

    # The next run finishes the unfinished batch first (applying it again changes nothing)...
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 1
    replayed = row(database, session_id)
    assert replayed is not None
    assert ms(replayed[3]) == first_ex
    # ...and the run after that brings the newer slide.
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 1
    latest = row(database, session_id)
    assert latest is not None
    assert ms(latest[3]) == second_ex
    assert redis_client.exists(bucket.flush_pointer, bucket.pending_access) == 0
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 0


def test_a_replayed_older_batch_never_moves_the_expiry_back(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    session_id = create(client, user, {"a": 1}, ttl=5)["session_id"]
    svc = services_of(app)
    assert client.get(f"/sessions/{session_id}").status_code == 200
    first = redis_client.hget(SessionBucket.of_user(user).pending_access, session_id)
    assert first is not None
    time.sleep(0.2)
    assert client.get(f"/sessions/{session_id}").status_code == 200
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 1
    latest = row(database, session_id)
    assert latest is not None

    # An old access arriving late (a redelivered batch) is ignored by GREATEST.
    redis_client.hset(SessionBucket.of_user(user).pending_access, session_id, first)
    assert sessions.flush_session_access(svc.redis, svc.database, svc.queries) == 1

    assert row(database, session_id) == latest


def test_cleanup_removes_expired_rows_and_index_members(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user, other = new_user(), new_user()
    expiring = [create(client, user, {"n": n}, ttl=1)["session_id"] for n in range(3)]
    survivor = create(client, other, {"live": True}, ttl=600)["session_id"]
    index = SessionBucket.of_user(user).user_index(user)
    assert redis_client.zcard(index) == 3
    time.sleep(1.3)
    svc = services_of(app)
    store = SessionStore(svc.redis)

    # Within the grace period nothing is removed.
    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 600, 5000) == 0
    assert all(row(database, session_id) is not None for session_id in expiring)

    removed = sessions.cleanup_expired_sessions(
        store, svc.database, svc.queries, grace_seconds=0, limit=5000
    )

    assert removed == 3
    (expired_rows,) = database.execute(
        "SELECT count(*) FROM cache_sessions WHERE expires_at < now()"
    ).fetchone() or (None,)
    assert expired_rows == 0
    assert redis_client.zcard(index) == 0
    assert row(database, survivor) is not None
    assert client.get(f"/sessions/{survivor}").status_code == 200
    other_index = SessionBucket.of_user(other).user_index(other)
    assert redis_client.zcard(other_index) == 1
    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 0, 5000) == 0


def test_cleanup_runs_in_bounded_batches(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    for n in range(5):
        create(client, user, {"n": n}, ttl=1)
    time.sleep(1.3)
    svc = services_of(app)
    store = SessionStore(svc.redis)

    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 0, 2) == 2
    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 0, 2) == 2
    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 0, 2) == 1
    assert sessions.cleanup_expired_sessions(store, svc.database, svc.queries, 0, 2) == 0
    assert redis_client.zcard(SessionBucket.of_user(user).user_index(user)) == 0


# Sliding refreshes and PATCHes


def test_a_patch_keeps_an_expiry_a_read_has_slid(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    """The slide lives only in Redis until the workers flush it; a PATCH must not undo it."""
    created_at = time.monotonic()
    session_id = create(client, new_user(), {"a": 1}, ttl=1)["session_id"]
    time.sleep(0.6)
    read = client.get(f"/sessions/{session_id}")
    slid = int(redis_client.hget(hot_key(session_id), "ex") or 0)

    patched = client.patch(f"/sessions/{session_id}", json={"data": {"b": 2}})

    assert patched.status_code == 200
    assert patched.get_json()["expires_at"] == read.get_json()["expires_at"]
    assert patched.get_json()["last_accessed"] == read.get_json()["last_accessed"]
    assert int(redis_client.hget(hot_key(session_id), "ex") or 0) == slid
    assert redis_client.pttl(hot_key(session_id)) > 500
    # Past the expiry the row had before the slide, the session is still there.
    time.sleep(max(0.0, created_at + 1.25 - time.monotonic()))
    alive = client.get(f"/sessions/{session_id}?touch=false")
    assert alive.status_code == 200
    assert alive.get_json()["data"] == {"a": 1, "b": 2}


def test_a_shorter_ttl_is_not_undone_by_an_earlier_slide(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    session_id = create(client, new_user(), {"a": 1}, ttl=600)["session_id"]
    assert client.get(f"/sessions/{session_id}").status_code == 200  # Slides to +600 s.

    patched = client.patch(f"/sessions/{session_id}", json={"ttl": 1})
    assert patched.status_code == 200
    svc = services_of(app)
    sessions.flush_session_access(svc.redis, svc.database, svc.queries)
    stored = row(database, session_id)
    assert stored is not None
    assert stored[1] == 1
    assert abs(ms(stored[3]) - int(redis_client.hget(hot_key(session_id), "ex") or 0)) <= 1
    time.sleep(1.3)

    assert client.get(f"/sessions/{session_id}?touch=false").status_code == 404
    assert client.get(f"/sessions/{session_id}").status_code == 404


# Redis down: a private redis-server, killed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def down_app(server: RedisServer, redis_url: str, database_url: str) -> Iterator[Flask]:
    """The cache's Redis is the private server; the rate limiter keeps its own store.

    With the limiter in the cache's Redis (the default), only the folded GET fails open: see
    ``test_create_with_the_default_limiter_while_redis_is_down``.
    """
    app = create_app(
        app_settings(server.url, database_url=database_url, rate_limit_redis_url=redis_url)
    )
    yield app
    services_of(app).shutdown()


@pytest.fixture
def down_http(down_app: Flask) -> FlaskClient:
    return authorized_client(down_app)


def eventually_cached(http: FlaskClient, raw: redis.Redis, session_id: str) -> dict[str, Any]:
    """Read until the hot copy is back (the first request after a restart may drop a stale
    pooled connection)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while True:
        response = http.get(f"/sessions/{session_id}?touch=false")
        assert response.status_code == 200, response.get_json()
        if raw.exists(hot_key(session_id)):
            body: dict[str, Any] = response.get_json()
            return body
        assert time.monotonic() < deadline, "Redis was never refilled"
        time.sleep(0.05)


def test_sessions_work_from_postgres_while_redis_is_down(
    server: RedisServer,
    down_http: FlaskClient,
    redis_client: redis.Redis,
    database: psycopg.Connection[Any],
) -> None:
    user = new_user()
    existing = create(down_http, user, {"before": True}, ttl=600)

    server.kill()

    read = down_http.get(f"/sessions/{existing['session_id']}")
    assert read.status_code == 200, read.get_json()
    assert read.get_json()["data"] == {"before": True}
    untouched = down_http.get(f"/sessions/{existing['session_id']}?touch=false")
    assert untouched.status_code == 200
    made = down_http.post("/sessions", json={"user_id": user, "data": {"during": 1}, "ttl": 600})
    assert made.status_code == 201, made.get_json()
    made_id = made.get_json()["session_id"]
    stored = row(database, made_id)
    assert stored is not None
    assert stored[0] == {"during": 1}
    assert down_http.get(f"/sessions/{made_id}").get_json()["data"] == {"during": 1}

    server.start()  # Empty: nothing survived the kill.
    raw = server.client()
    try:
        for session_id, data in (
            (existing["session_id"], {"before": True}),
            (made_id, {"during": 1}),
        ):
            assert eventually_cached(down_http, raw, session_id)["data"] == data
            assert down_http.get(f"/sessions/{session_id}").status_code == 200
        assert down_http.get(f"/users/{user}/sessions").get_json()["total"] == 2
    finally:
        raw.close()


def test_delete_while_redis_is_down_is_refused_and_leaves_the_session(
    server: RedisServer,
    down_http: FlaskClient,
    redis_client: redis.Redis,
    database: psycopg.Connection[Any],
) -> None:
    """The hot copy cannot be removed, so deleting only the row could leave it readable."""
    user = new_user()
    session_id = create(down_http, user, {"a": 1})["session_id"]
    server.freeze()  # Redis keeps its copy but does not answer; it may come back with it.
    try:
        deleted = down_http.delete(f"/sessions/{session_id}")
        revoked = down_http.delete(f"/users/{user}/sessions")
    finally:
        server.thaw()

    for response in (deleted, revoked):
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["error"] == "service_unavailable"
    assert row(database, session_id) is not None
    assert down_http.get(f"/sessions/{session_id}").status_code == 200

    server.kill()
    assert down_http.delete(f"/sessions/{session_id}").status_code == 503
    server.start()
    raw = server.client()
    try:
        eventually_cached(down_http, raw, session_id)
        assert down_http.delete(f"/sessions/{session_id}").status_code == 200
        assert raw.exists(hot_key(session_id)) == 0
    finally:
        raw.close()
    assert down_http.get(f"/sessions/{session_id}").status_code == 404
    assert row(database, session_id) is None


def test_create_with_the_default_limiter_while_redis_is_down(
    server: RedisServer, database_url: str, database: psycopg.Connection[Any]
) -> None:
    """Limiter state in the cache's Redis (the default): the folded GET fails open to
    Postgres. POST's limit check runs on its own and cannot (today a 503): either way a
    create is all or nothing, and a DELETE is refused."""
    app = create_app(app_settings(server.url, database_url=database_url))
    try:
        http = authorized_client(app)
        session_id = create(http, new_user(), {"a": 1})["session_id"]
        server.kill()

        assert http.get(f"/sessions/{session_id}").status_code == 200
        made = http.post("/sessions", json={"user_id": new_user(), "data": {}})
        assert made.status_code in (201, 503), made.get_json()
        assert http.delete(f"/sessions/{session_id}").status_code == 503
        (rows,) = database.execute("SELECT count(*) FROM cache_sessions").fetchone() or (None,)
        assert rows == (2 if made.status_code == 201 else 1)
        assert row(database, session_id) is not None
    finally:
        services_of(app).shutdown()


def test_a_refill_racing_a_revocation_cannot_bring_the_session_back(
    app: Flask, client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    found: Services = app.extensions["cacheservice"]
    user = str(uuid.uuid4())
    session_id = client.post("/sessions", json={"user_id": user, "data": {"a": 1}}).get_json()[
        "session_id"
    ]
    redis_client.flushdb()  # The hot copy is gone: the next read goes to Postgres ...
    with found.database.connection() as conn:
        row = conn.execute(found.queries["live_session"], {"session_id": session_id}).fetchone()
    assert row is not None
    assert client.delete(f"/sessions/{session_id}").status_code == 200
    # ... and writes the row it fetched back to Redis only after the revocation finished.
    found.sessions._refill(row)

    assert client.get(f"/sessions/{session_id}").status_code == 404
    assert client.get(f"/users/{user}/sessions").get_json()["total"] == 0
