"""``/sessions`` and ``/users/{user_id}/sessions`` over the API, against real Redis and Postgres.

CRUD and the PATCH merge, sliding expiry (compared through the hot copy's expiry in Redis, not
long sleeps), real expiry, list and revoke-all, the shape of session ids, 404s for malformed or
unknown ids, scopes, the "sessions" rate limit category, and ids kept out of the logs.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.sessions import MAX_DATA_BYTES, redacted
from cacheservice.store.keys import SessionBucket
from cacheservice.store.sessions import parse_session_id
from tests.conftest import AppFactory
from tests.support.auth import authorized_client

SESSION_ID = re.compile(r"^([0-9a-f]{2})\.([A-Za-z0-9_-]{32})$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SESSION_FIELDS = {
    "session_id",
    "user_id",
    "data",
    "ttl",
    "created_at",
    "expires_at",
    "last_accessed",
}


def new_user() -> str:
    return str(uuid.uuid4())


def create(
    http: FlaskClient, user_id: str, data: dict[str, Any] | None = None, ttl: int | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "data": data if data is not None else {}}
    if ttl is not None:
        body["ttl"] = ttl
    response = http.post("/sessions", json=body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def parse_time(text: str) -> datetime:
    assert RFC3339.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def hot_key(session_id: str) -> str:
    parsed = parse_session_id(session_id)
    assert parsed is not None
    bucket, secret = parsed
    return bucket.session(secret)


def hot_expiry_ms(client: redis.Redis, session_id: str) -> int:
    """The expiry the hot copy carries (its ``ex`` field, in ms)."""
    value = client.hget(hot_key(session_id), "ex")
    assert value is not None, "no hot copy in Redis"
    return int(value)


def assert_not_found(response: TestResponse, session_id: str | None = None) -> None:
    assert response.status_code == 404, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == "session_not_found"
    assert set(body) == {"error", "message", "details"}
    if session_id is not None and len(session_id) > 7:
        # The error body shows only the redacted id.
        assert session_id not in response.get_data(as_text=True)


def row_count(database: psycopg.Connection[Any], session_id: str) -> int:
    found = database.execute(
        "SELECT count(*) FROM cache_sessions WHERE session_id = %s", (session_id,)
    ).fetchone()
    assert found is not None
    return int(found[0])


# CRUD


def test_create_get_patch_delete(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    before = datetime.now(UTC).replace(microsecond=0)

    created = create(client, user, {"cart": [1, 2], "theme": "dark"}, ttl=600)

    assert set(created) == SESSION_FIELDS
    assert created["user_id"] == user
    assert created["data"] == {"cart": [1, 2], "theme": "dark"}
    assert created["ttl"] == 600
    created_at = parse_time(created["created_at"])
    assert before <= created_at <= datetime.now(UTC)
    assert (parse_time(created["expires_at"]) - created_at).total_seconds() in (600, 601)
    assert parse_time(created["last_accessed"]) == created_at
    session_id = created["session_id"]
    # Durable before the answer: the row is committed, and the hot copy is in Redis.
    assert row_count(database, session_id) == 1
    assert redis_client.exists(hot_key(session_id)) == 1

    read = client.get(f"/sessions/{session_id}")
    assert read.status_code == 200
    assert read.get_json()["data"] == created["data"]
    assert set(read.get_json()) == SESSION_FIELDS

    patched = client.patch(f"/sessions/{session_id}", json={"data": {"theme": "light"}})
    assert patched.status_code == 200
    assert patched.get_json()["data"] == {"cart": [1, 2], "theme": "light"}
    assert client.get(f"/sessions/{session_id}").get_json()["data"] == {
        "cart": [1, 2],
        "theme": "light",
    }

    deleted = client.delete(f"/sessions/{session_id}")
    assert deleted.status_code == 200
    body = deleted.get_json()
    assert body["session_id"] == session_id
    assert body["deleted"] is True
    assert RFC3339.match(body["deleted_at"])

    assert_not_found(client.get(f"/sessions/{session_id}"), session_id)
    assert_not_found(client.patch(f"/sessions/{session_id}", json={"data": {"a": 1}}), session_id)
    assert_not_found(client.delete(f"/sessions/{session_id}"), session_id)
    assert row_count(database, session_id) == 0
    assert redis_client.exists(hot_key(session_id)) == 0


def test_the_default_ttl_is_1800_seconds(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    created = create(client, new_user())

    assert created["ttl"] == 1800
    span = parse_time(created["expires_at"]) - parse_time(created["created_at"])
    assert span.total_seconds() in (1800, 1801)


def test_patch_merges_data_at_the_top_level(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    created = create(
        client,
        new_user(),
        {"keep": 1, "replace": "old", "nested": {"a": 1, "b": 2}, "list": [1, 2]},
        ttl=600,
    )
    session_id = created["session_id"]

    response = client.patch(
        f"/sessions/{session_id}",
        json={"data": {"replace": "new", "nested": {"c": 3}, "list": [], "added": None}},
    )

    assert response.status_code == 200
    expected = {"keep": 1, "replace": "new", "nested": {"c": 3}, "list": [], "added": None}
    assert response.get_json()["data"] == expected
    # The expiry is not touched by a data-only PATCH.
    assert response.get_json()["expires_at"] == created["expires_at"]
    assert response.get_json()["ttl"] == 600
    assert client.get(f"/sessions/{session_id}?touch=false").get_json()["data"] == expected
    (stored,) = database.execute(
        "SELECT data FROM cache_sessions WHERE session_id = %s", (session_id,)
    ).fetchone() or (None,)
    assert stored == expected


def test_patch_with_ttl_alone_restarts_the_expiry(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    created = create(client, new_user(), {"a": 1}, ttl=600)
    session_id = created["session_id"]

    started = time.time()
    response = client.patch(f"/sessions/{session_id}", json={"ttl": 30})

    assert response.status_code == 200
    body = response.get_json()
    assert body["ttl"] == 30
    assert body["data"] == {"a": 1}
    expires = parse_time(body["expires_at"]).timestamp()
    assert started + 29 <= expires <= time.time() + 30
    assert 28_000 < redis_client.pttl(hot_key(session_id)) <= 30_000
    (row_expiry,) = database.execute(
        "SELECT expires_at FROM cache_sessions WHERE session_id = %s", (session_id,)
    ).fetchone() or (None,)
    assert row_expiry is not None
    assert abs(row_expiry.timestamp() * 1000 - hot_expiry_ms(redis_client, session_id)) < 2

    # Later reads slide by the new ttl.
    assert client.get(f"/sessions/{session_id}").get_json()["ttl"] == 30
    assert redis_client.pttl(hot_key(session_id)) <= 30_000


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": "60"},
        {"ttl": 1.5},
        {"data": [1, 2]},
        {"data": "text"},
        {"data": None},
        {"unknown": 1},
    ],
)
def test_invalid_patch_bodies_are_400(
    client: FlaskClient, database: psycopg.Connection[Any], body: dict[str, Any]
) -> None:
    created = create(client, new_user(), {"a": 1}, ttl=600)

    response = client.patch(f"/sessions/{created['session_id']}", json=body)

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_request"
    assert client.get(f"/sessions/{created['session_id']}").get_json()["data"] == {"a": 1}


@pytest.mark.parametrize(
    "body",
    [
        {"data": {}},
        {"user_id": "not-a-uuid", "data": {}},
        {"user_id": 12, "data": {}},
        {"user_id": "", "data": {}},
        {"user_id": None, "data": {}},
        {"user_id": "USER", "data": {}},
        {"data": {}, "user_id": "00000000-0000-0000-0000-00000000000g"},
    ],
)
def test_invalid_user_ids_are_400(
    client: FlaskClient, database: psycopg.Connection[Any], body: dict[str, Any]
) -> None:
    response = client.post("/sessions", json=body)

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_request"
    assert "user_id" in response.get_json()["details"]
    (count,) = database.execute("SELECT count(*) FROM cache_sessions").fetchone() or (None,)
    assert count == 0


@pytest.mark.parametrize("method", ["get", "delete"])
@pytest.mark.parametrize("user_id", ["not-a-uuid", "12", "x" * 300])
def test_invalid_user_ids_in_the_path_are_400(
    client: FlaskClient, database: psycopg.Connection[Any], method: str, user_id: str
) -> None:
    response = getattr(client, method)(f"/users/{user_id}/sessions")

    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        {"data": []},
        {"data": "x"},
        {"data": {}, "ttl": 0},
        {"data": {}, "ttl": "60"},
        {"data": {}, "ttl": True},
    ],
)
def test_invalid_create_bodies_are_400(
    client: FlaskClient, database: psycopg.Connection[Any], body: dict[str, Any]
) -> None:
    response = client.post("/sessions", json={"user_id": new_user(), **body})

    assert response.status_code == 400, response.get_json()


def test_a_user_id_is_normalised(client: FlaskClient, database: psycopg.Connection[Any]) -> None:
    user = new_user()

    created = create(client, user.upper(), {"a": 1})

    assert created["user_id"] == user
    assert created["session_id"].startswith(SessionBucket.of_user(user).label + ".")
    listed = client.get(f"/users/{user.upper()}/sessions").get_json()
    assert [s["session_id"] for s in listed["sessions"]] == [created["session_id"]]


def test_session_data_is_bounded(client: FlaskClient, database: psycopg.Connection[Any]) -> None:
    half = "x" * (MAX_DATA_BYTES // 2)
    too_big = client.post(
        "/sessions", json={"user_id": new_user(), "data": {"blob": "x" * MAX_DATA_BYTES}}
    )
    assert too_big.status_code == 400
    assert too_big.get_json()["error"] == "invalid_request"

    created = create(client, new_user(), {"a": half})
    # A merge that would grow the data past the bound is refused and changes nothing.
    response = client.patch(f"/sessions/{created['session_id']}", json={"data": {"b": half}})
    assert response.status_code == 400
    assert client.get(f"/sessions/{created['session_id']}").get_json()["data"] == {"a": half}
    (stored,) = database.execute(
        "SELECT data FROM cache_sessions WHERE session_id = %s", (created["session_id"],)
    ).fetchone() or (None,)
    assert stored == {"a": half}


# Sliding expiry


def test_get_slides_the_expiry_and_touch_false_does_not(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    ttl = 4
    created = create(client, new_user(), {"a": 1}, ttl=ttl)
    session_id = created["session_id"]
    key = hot_key(session_id)
    first_expiry = hot_expiry_ms(redis_client, session_id)
    time.sleep(0.4)

    untouched = client.get(f"/sessions/{session_id}", query_string={"touch": "false"})

    assert untouched.status_code == 200
    assert untouched.get_json()["expires_at"] == created["expires_at"]
    assert untouched.get_json()["last_accessed"] == created["last_accessed"]
    assert hot_expiry_ms(redis_client, session_id) == first_expiry
    assert redis_client.pttl(key) <= ttl * 1000 - 300
    assert redis_client.hlen(SessionBucket.of_user(created["user_id"]).pending_access) == 0

    before_ms = time.time_ns() // 1_000_000
    touched = client.get(f"/sessions/{session_id}")
    after_ms = time.time_ns() // 1_000_000

    assert touched.status_code == 200
    slid = hot_expiry_ms(redis_client, session_id)
    assert before_ms + ttl * 1000 <= slid <= after_ms + ttl * 1000
    assert slid >= first_expiry + 300
    assert redis_client.pttl(key) > ttl * 1000 - 200
    body = touched.get_json()
    assert parse_time(body["expires_at"]).timestamp() == slid // 1000
    assert parse_time(body["last_accessed"]).timestamp() == (slid - ttl * 1000) // 1000
    # The user's index moves with the session (it is scored by expiry).
    index = SessionBucket.of_user(created["user_id"]).user_index(created["user_id"])
    assert redis_client.zscore(index, session_id) == slid
    # The slide waits for the workers to reach Postgres.
    pending = redis_client.hget(
        SessionBucket.of_user(created["user_id"]).pending_access, session_id
    )
    assert pending is not None
    assert isinstance(pending, bytes)
    assert pending.split(b":")[1] == str(slid).encode()

    # touch=true explicitly slides too; touch=0 / touch=false never does.
    time.sleep(0.2)
    assert client.get(f"/sessions/{session_id}?touch=true").status_code == 200
    again = hot_expiry_ms(redis_client, session_id)
    assert again > slid
    assert client.get(f"/sessions/{session_id}?touch=0").status_code == 200
    assert hot_expiry_ms(redis_client, session_id) == again


def test_touch_must_be_a_boolean(client: FlaskClient, database: psycopg.Connection[Any]) -> None:
    created = create(client, new_user(), {"a": 1})

    response = client.get(f"/sessions/{created['session_id']}?touch=maybe")

    assert response.status_code == 400


def test_a_session_really_expires_and_is_not_read_back_from_postgres(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    created = create(client, new_user(), {"a": 1}, ttl=1)
    session_id = created["session_id"]
    time.sleep(1.3)

    assert_not_found(client.get(f"/sessions/{session_id}"), session_id)
    assert_not_found(client.get(f"/sessions/{session_id}?touch=false"), session_id)
    # The row is still there (cleanup removes it after a grace period), but it is not live.
    assert row_count(database, session_id) == 1
    assert redis_client.exists(hot_key(session_id)) == 0
    assert_not_found(client.patch(f"/sessions/{session_id}", json={"data": {"b": 2}}), session_id)
    listed = client.get(f"/users/{created['user_id']}/sessions").get_json()
    assert listed["sessions"] == []
    assert listed["total"] == 0
    assert redis_client.exists(hot_key(session_id)) == 0
    # Deleting an expired session is a 404 (it was not live) and removes the row.
    assert_not_found(client.delete(f"/sessions/{session_id}"), session_id)
    assert row_count(database, session_id) == 0


# List and revoke


def test_list_and_revoke_all_sessions_of_a_user(
    client: FlaskClient, redis_client: redis.Redis, database: psycopg.Connection[Any]
) -> None:
    user, other = new_user(), new_user()
    mine = [create(client, user, {"n": n}, ttl=600) for n in range(3)]
    theirs = create(client, other, {"other": True}, ttl=600)

    listed = client.get(f"/users/{user}/sessions")

    assert listed.status_code == 200
    body = listed.get_json()
    assert body["user_id"] == user
    assert body["total"] == 3
    assert [s["session_id"] for s in body["sessions"]] == [s["session_id"] for s in mine]
    assert [s["data"] for s in body["sessions"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert all(set(s) == SESSION_FIELDS for s in body["sessions"])

    revoked = client.delete(f"/users/{user}/sessions")

    assert revoked.status_code == 200
    assert revoked.get_json()["revoked"] == 3
    assert revoked.get_json()["user_id"] == user
    assert RFC3339.match(revoked.get_json()["revoked_at"])
    for session in mine:
        assert_not_found(client.get(f"/sessions/{session['session_id']}"), session["session_id"])
        assert redis_client.exists(hot_key(session["session_id"])) == 0
    assert redis_client.zcard(SessionBucket.of_user(user).user_index(user)) == 0
    (rows,) = database.execute(
        "SELECT count(*) FROM cache_sessions WHERE user_id = %s", (user,)
    ).fetchone() or (None,)
    assert rows == 0

    # Nothing comes back once Redis is emptied either.
    redis_client.flushdb()
    for session in mine:
        assert_not_found(client.get(f"/sessions/{session['session_id']}"), session["session_id"])
    assert client.get(f"/users/{user}/sessions").get_json()["total"] == 0
    assert client.delete(f"/users/{user}/sessions").get_json()["revoked"] == 0

    # The other user's session is untouched.
    still = client.get(f"/sessions/{theirs['session_id']}")
    assert still.status_code == 200
    assert still.get_json()["data"] == {"other": True}
    assert client.get(f"/users/{other}/sessions").get_json()["total"] == 1


def test_a_user_without_sessions_lists_none(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    user = new_user()

    body = client.get(f"/users/{user}/sessions").get_json()

    assert body == {"user_id": user, "sessions": [], "total": 0}
    assert client.delete(f"/users/{user}/sessions").get_json()["revoked"] == 0


def test_a_deleted_session_leaves_the_list(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    first, second = create(client, user, {"n": 1}), create(client, user, {"n": 2})

    assert client.delete(f"/sessions/{first['session_id']}").status_code == 200

    listed = client.get(f"/users/{user}/sessions").get_json()
    assert [s["session_id"] for s in listed["sessions"]] == [second["session_id"]]
    assert client.delete(f"/users/{user}/sessions").get_json()["revoked"] == 1


# Session ids


def test_session_ids_are_unguessable_and_routed_by_user(
    app: Flask, client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    users = [new_user() for _ in range(10)]
    # A few through the API, the rest through the service (the same code path, without HTTP).
    ids = [create(client, user, ttl=60)["session_id"] for user in users]
    sessions = app.extensions["cacheservice"].sessions
    with ThreadPoolExecutor(max_workers=4) as pool:
        ids += pool.map(
            lambda n: sessions.create(users[n % 10], {}, 60).session_id, range(len(ids), 1000)
        )

    for n, session_id in enumerate(ids):
        found = SESSION_ID.match(session_id)
        assert found is not None, session_id
        assert found.group(1) == SessionBucket.of_user(users[n % 10]).label
        # 32 base64url characters are 24 bytes: 192 bits, at least the 128 the contract asks.
        secret = base64.urlsafe_b64decode(found.group(2) + "=" * (-len(found.group(2)) % 4))
        assert len(secret) * 8 >= 128
    assert len(set(ids)) == 1000
    assert len({session_id.split(".")[1] for session_id in ids}) == 1000
    (rows,) = database.execute(
        "SELECT count(DISTINCT session_id) FROM cache_sessions"
    ).fetchone() or (None,)
    assert rows == 1000


MALFORMED_IDS = [
    "abc",
    "zz." + "a" * 32,
    "AB." + "a" * 32,
    "0." + "a" * 32,
    "000." + "a" * 32,
    "00" + "a" * 32,
    "00." + "a" * 31,
    "00." + "a" * 33,
    "00." + "a" * 31 + "+",
    "00." + "a" * 31 + "=",
    "00." + "é" * 32,
    "00..." + "a" * 30,
    "x" * 4096,
    "..",
    "%00",
    "00.%0a" + "a" * 30,
    "null",
]


@pytest.mark.parametrize("session_id", MALFORMED_IDS)
def test_malformed_session_ids_are_not_found(
    client: FlaskClient, database: psycopg.Connection[Any], session_id: str
) -> None:
    path = f"/sessions/{session_id}"
    assert_not_found(client.get(path))
    assert_not_found(client.get(path, query_string={"touch": "false"}))
    assert_not_found(client.patch(path, json={"data": {"a": 1}}))
    assert_not_found(client.delete(path))


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_session_ids_are_not_found(
    client: FlaskClient, database: psycopg.Connection[Any], method: str
) -> None:
    user = new_user()
    real = create(client, user, {"a": 1})["session_id"]
    label, secret = real.split(".")
    other_label = f"{(int(label, 16) + 1) % 256:02x}"
    kwargs: dict[str, Any] = {"json": {"data": {"a": 2}}} if method == "patch" else {}
    unknown = [
        f"{label}.{'A' * 32}",  # Right bucket, wrong secret.
        f"{other_label}.{secret}",  # Right secret, wrong bucket.
        f"{label}.{secret[::-1]}",
    ]

    for session_id in unknown:
        assert_not_found(getattr(client, method)(f"/sessions/{session_id}", **kwargs), session_id)

    # The real session is untouched by all of that.
    assert client.get(f"/sessions/{real}").get_json()["data"] == {"a": 1}


# Scopes and rate limits


def test_sessions_read_scope_reads_but_cannot_write(
    app: Flask, client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    user = new_user()
    session_id = create(client, user, {"a": 1})["session_id"]
    reader = authorized_client(app, sub="reader", scope="sessions:read")

    assert reader.get(f"/sessions/{session_id}").status_code == 200
    assert reader.get(f"/sessions/{session_id}?touch=false").status_code == 200
    assert reader.get(f"/users/{user}/sessions").get_json()["total"] == 1

    refused = [
        reader.post("/sessions", json={"user_id": user, "data": {}}),
        reader.patch(f"/sessions/{session_id}", json={"data": {"b": 2}}),
        reader.delete(f"/sessions/{session_id}"),
        reader.delete(f"/users/{user}/sessions"),
    ]
    for response in refused:
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["details"]["required_scope"] == "sessions:write"

    assert client.get(f"/sessions/{session_id}").get_json()["data"] == {"a": 1}
    assert client.get(f"/users/{user}/sessions").get_json()["total"] == 1


@pytest.mark.parametrize("scope", ["cache:admin", "cache:write stats:read", "sessions"])
def test_other_scopes_cannot_touch_sessions(
    app: Flask, client: FlaskClient, database: psycopg.Connection[Any], scope: str
) -> None:
    user = new_user()
    session_id = create(client, user, {"a": 1})["session_id"]
    outsider = authorized_client(app, sub="outsider", scope=scope)

    read = outsider.get(f"/sessions/{session_id}")
    assert read.status_code == 403
    assert read.get_json()["details"]["required_scope"] == "sessions:read"
    assert outsider.get(f"/users/{user}/sessions").status_code == 403
    assert outsider.post("/sessions", json={"user_id": user, "data": {}}).status_code == 403


def test_sessions_need_a_token(app: Flask, database: psycopg.Connection[Any]) -> None:
    anonymous = app.test_client()
    user = new_user()

    assert anonymous.post("/sessions", json={"user_id": user, "data": {}}).status_code == 401
    assert anonymous.get(f"/sessions/00.{'a' * 32}").status_code == 401
    assert anonymous.get(f"/users/{user}/sessions").status_code == 401


def test_the_sessions_rate_limit_category_applies(
    make_app: AppFactory, database: psycopg.Connection[Any]
) -> None:
    http = authorized_client(
        make_app(rate_limit_sessions="3/minute", rate_limit_cache="100/minute")
    )
    user = new_user()

    created = http.post("/sessions", json={"user_id": user, "data": {}})
    assert created.status_code == 201
    session_id = created.get_json()["session_id"]
    read = http.get(f"/sessions/{session_id}")
    assert read.status_code == 200
    assert read.headers["X-RateLimit-Limit"] == "3"
    assert read.headers["X-RateLimit-Remaining"] == "1"
    assert http.get(f"/users/{user}/sessions").status_code == 200

    for response in (
        http.get(f"/sessions/{session_id}"),
        http.post("/sessions", json={"user_id": user, "data": {}}),
        http.patch(f"/sessions/{session_id}", json={"data": {"a": 1}}),
        http.delete(f"/sessions/{session_id}"),
        http.get(f"/users/{user}/sessions"),
        http.delete(f"/users/{user}/sessions"),
    ):
        assert response.status_code == 429, response.get_json()
        assert response.get_json()["details"]["limit"] == 3

    # Another category keeps its own quota, and nothing was deleted by the refused calls.
    cache = http.get("/cache/absent")
    assert cache.status_code == 404
    assert cache.headers["X-RateLimit-Limit"] == "100"
    (rows,) = database.execute(
        "SELECT count(*) FROM cache_sessions WHERE user_id = %s", (user,)
    ).fetchone() or (None,)
    assert rows == 1


# Session ids are credentials: never logged in full.


def test_session_ids_are_never_logged_in_full(
    client: FlaskClient,
    redis_client: redis.Redis,
    database: psycopg.Connection[Any],
    request_log: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user = new_user()
    with caplog.at_level(logging.DEBUG):
        session_id = create(client, user, {"a": 1})["session_id"]
        unknown = f"{session_id[:3]}{'Z' * 32}"
        assert client.get(f"/sessions/{session_id}").status_code == 200
        assert client.get(f"/sessions/{session_id}?touch=false").status_code == 200
        assert client.patch(f"/sessions/{session_id}", json={"data": {"b": 1}}).status_code == 200
        assert client.get(f"/sessions/{unknown}").status_code == 404
        redis_client.flushdb()  # The refill path logs nothing of the id either.
        assert client.get(f"/sessions/{session_id}").status_code == 200
        assert client.get(f"/users/{user}/sessions").status_code == 200
        assert client.delete(f"/sessions/{session_id}").status_code == 200
        assert client.get(f"/sessions/{session_id}").status_code == 404

    logged = [json.loads(line) for line in request_log.getvalue().splitlines()]
    assert len(logged) == 9
    text = request_log.getvalue()
    for full in (session_id, unknown, session_id[8:], unknown[8:]):
        assert full not in text
        assert full not in caplog.text
        for record in caplog.records:
            assert full not in record.getMessage()
            assert full not in json.dumps(vars(record), default=str)
    paths = [line["path"] for line in logged if line["path"].startswith("/sessions/")]
    assert f"/sessions/{redacted(session_id)}" in paths
    assert f"/sessions/{redacted(unknown)}" in paths
    assert all(path.endswith("...") for path in paths)
