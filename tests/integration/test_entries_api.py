"""``POST /cache``, ``GET /cache/{key}`` and ``DELETE /cache/{key}`` against a real Redis."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.store.keys import KeySpace
from tests.conftest import AppFactory
from tests.support.auth import authorized_client

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
METADATA_FIELDS = {
    "type",
    "ttl",
    "ttl_remaining",
    "created_at",
    "updated_at",
    "expires_at",
    "hit_count",
    "last_accessed",
    "tags",
    "size_bytes",
    "stored_bytes",
    "compression",
    # Beyond the contract's list: whether reads slide the expiry.
    "sliding",
}


def put(client: FlaskClient, key: str, value: Any = "v", **fields: Any) -> TestResponse:
    return client.post("/cache", json={"key": key, "value": value, **fields})


def get(client: FlaskClient, key: str, **query: Any) -> TestResponse:
    return client.get(f"/cache/{key}", query_string=query)


def metadata(client: FlaskClient, key: str, namespace: str = "default") -> dict[str, Any]:
    response = get(client, key, namespace=namespace, include_metadata="true")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def parse_time(text: str) -> datetime:
    assert RFC3339.match(text), text
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def whole_seconds_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def keyspace(app: Flask) -> KeySpace:
    return KeySpace(app.extensions["cacheservice"].settings.namespace_buckets)


# POST /cache


def test_create_then_replace_then_refuse(client: FlaskClient) -> None:
    before = whole_seconds_now()
    created = put(client, "user:1", {"name": "Ann"}, namespace="users", ttl=60, tags=["user"])
    assert created.status_code == 201
    body = created.get_json()
    assert body["key"] == "user:1"
    assert body["namespace"] == "users"
    assert body["ttl"] == 60
    assert body["created"] is True
    created_at = parse_time(body["created_at"])
    assert before <= created_at <= whole_seconds_now()
    assert parse_time(body["expires_at"]) - created_at == timedelta(seconds=60)

    replaced = put(client, "user:1", {"name": "Bob"}, namespace="users", ttl=120)
    assert replaced.status_code == 200
    assert replaced.get_json()["created"] is False
    assert replaced.get_json()["ttl"] == 120
    # Replacing keeps the entry's creation time.
    assert replaced.get_json()["created_at"] == body["created_at"]

    refused = put(client, "user:1", {"name": "Eve"}, namespace="users", overwrite=False)
    assert refused.status_code == 409
    assert refused.get_json()["error"] == "key_exists"
    assert refused.get_json()["details"]["key"] == "user:1"
    assert get(client, "user:1", namespace="users").get_json()["value"] == {"name": "Bob"}


def test_overwrite_false_creates_when_absent(client: FlaskClient) -> None:
    assert put(client, "fresh", 1, overwrite=False).status_code == 201


def test_default_ttl_is_3600(client: FlaskClient, redis_client: redis.Redis, app: Flask) -> None:
    response = put(client, "k")
    assert response.status_code == 201
    assert response.get_json()["ttl"] == 3600
    entry_name = keyspace(app).bucket("default", "k").entry("k")
    assert 3590 * 1000 < redis_client.pttl(entry_name) <= 3600 * 1000
    assert metadata(client, "k")["ttl"] == 3600


def test_configured_default_ttl(make_app: AppFactory) -> None:
    client = authorized_client(make_app(default_ttl=90))
    assert put(client, "k").get_json()["ttl"] == 90


def test_ttl_sets_the_redis_expiry(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    put(client, "k", ttl=5)
    entry_name = keyspace(app).bucket("default", "k").entry("k")
    assert 4000 < redis_client.pttl(entry_name) <= 5000


def test_expires_at_sets_an_absolute_expiry(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    expires = whole_seconds_now() + timedelta(minutes=10)
    response = put(client, "k", expires_at=expires.isoformat().replace("+00:00", "Z"))
    assert response.status_code == 201
    body = response.get_json()
    assert parse_time(body["expires_at"]) == expires
    assert 598 <= body["ttl"] <= 600
    entry_name = keyspace(app).bucket("default", "k").entry("k")
    assert redis_client.pexpiretime(entry_name) == int(expires.timestamp() * 1000)


def test_expires_at_with_offset_and_fraction(client: FlaskClient) -> None:
    expires = whole_seconds_now() + timedelta(hours=1)
    local = expires.astimezone(datetime.now().astimezone().tzinfo)
    text = expires.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.250+00:00")
    assert parse_time(put(client, "k1", expires_at=text).get_json()["expires_at"]) == expires
    body = put(client, "k2", expires_at=local.isoformat()).get_json()
    assert parse_time(body["expires_at"]) == expires


def test_ttl_and_expires_at_are_exclusive(client: FlaskClient) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    response = put(client, "k", ttl=60, expires_at=future)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert set(response.get_json()["details"]) & {"ttl", "expires_at"}
    assert get(client, "k").status_code == 404


def test_expires_at_in_the_past_is_rejected(client: FlaskClient) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    response = put(client, "k", expires_at=past)
    assert response.status_code == 400
    assert response.get_json()["details"]["field"] == "expires_at"
    assert get(client, "k").status_code == 404


def test_expires_at_needs_a_timezone(client: FlaskClient) -> None:
    response = put(client, "k", expires_at="2999-01-01T00:00:00")
    assert response.status_code == 400
    assert "expires_at" in response.get_json()["details"]


@pytest.mark.parametrize(
    "value",
    [
        {"nested": {"list": [1, "two", None, False]}, "empty": {}},
        [1, [2, [3]], {"a": []}],
        [],
        {},
        'plain text with "quotes" and ünïcödé 🙂',
        "",
        0,
        -17,
        2**70,
        -(2**70),
        9007199254740993,
        0.1,
        -2.5e-300,
        1.7976931348623157e308,
        True,
        False,
        None,
    ],
)
def test_every_json_value_round_trips_exactly(client: FlaskClient, value: Any) -> None:
    assert put(client, "k", value).status_code == 201
    response = get(client, "k")
    assert response.status_code == 200
    got = response.get_json()["value"]
    assert got == value
    assert type(got) is type(value)


def test_big_integer_is_written_as_exact_digits(client: FlaskClient) -> None:
    put(client, "k", {"n": 2**70})
    assert b'"value":{"n":1180591620717411303424}' in get(client, "k").data


def test_string_type_round_trips(client: FlaskClient) -> None:
    response = put(client, "k", "héllo 🙂", type="string")
    assert response.status_code == 201
    body = metadata(client, "k")
    assert body["value"] == "héllo 🙂"
    assert body["type"] == "string"
    assert body["size_bytes"] == len("héllo 🙂".encode())


def test_binary_type_round_trips(client: FlaskClient) -> None:
    raw = bytes(range(256)) * 2
    encoded = base64.b64encode(raw).decode()
    assert put(client, "k", encoded, type="binary").status_code == 201
    body = metadata(client, "k")
    assert body["value"] == encoded
    assert body["type"] == "binary"
    assert body["size_bytes"] == 512


@pytest.mark.parametrize(
    ("value", "value_type"), [(5, "string"), ("***", "binary"), ("x", "hyperloglog")]
)
def test_value_must_fit_its_type(client: FlaskClient, value: Any, value_type: str) -> None:
    response = put(client, "k", value, type=value_type)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_replacing_an_entry_replaces_its_tags(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    bucket = keyspace(app).bucket("default", "k")
    put(client, "k", 1, tags=["old", "kept"])
    assert redis_client.zscore(bucket.tag("old"), "k") is not None
    put(client, "k", 2, tags=["kept", "new"])
    assert redis_client.zscore(bucket.tag("old"), "k") is None
    assert redis_client.zscore(bucket.tag("kept"), "k") is not None
    assert redis_client.zscore(bucket.tag("new"), "k") is not None
    assert metadata(client, "k")["tags"] == ["kept", "new"]

    old = client.post("/cache/invalidate", json={"tags": ["old"]}).get_json()
    assert old["total_invalidated"] == 0
    assert get(client, "k").status_code == 200
    new = client.post("/cache/invalidate", json={"tags": ["new"]}).get_json()
    assert new["total_invalidated"] == 1
    assert new["invalidated_keys"] == ["k"]


def test_replacing_without_tags_drops_them(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    bucket = keyspace(app).bucket("default", "k")
    put(client, "k", 1, tags=["a"])
    put(client, "k", 2)
    assert redis_client.zcard(bucket.tag("a")) == 0
    assert metadata(client, "k")["tags"] == []


def test_duplicate_tags_are_stored_once(client: FlaskClient) -> None:
    put(client, "k", tags=["a", "b", "a"])
    assert metadata(client, "k")["tags"] == ["a", "b"]


@pytest.mark.parametrize(
    "extra",
    [
        {"colour": "blue"},
        {"ttl": True},
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": 1.5},
        {"ttl": "60"},
        {"ttl": 2**31},
        {"overwrite": "yes"},
        {"overwrite": 1},
        {"namespace": "Users"},
        {"namespace": "users\n"},
        {"namespace": ""},
        {"tags": "a"},
        {"tags": ["a b"]},
        {"tags": ["a\n"]},
        {"tags": [f"t{i}" for i in range(33)]},
        {"type": "hash"},
        {"expires_at": "tomorrow"},
    ],
)
def test_invalid_fields_are_400_with_the_field_named(
    client: FlaskClient, extra: dict[str, Any]
) -> None:
    response = client.post("/cache", json={"key": "k", "value": 1, **extra})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert set(body["details"]) == set(extra)
    assert get(client, "k").status_code == 404


def test_thirty_two_tags_are_allowed(client: FlaskClient) -> None:
    tags = [f"t{i}" for i in range(32)]
    assert put(client, "k", tags=tags).status_code == 201
    assert metadata(client, "k")["tags"] == tags


@pytest.mark.parametrize("body", [{"value": 1}, {"key": "k"}, {}])
def test_key_and_value_are_required(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/cache", json=body)
    assert response.status_code == 400
    assert set(response.get_json()["details"]) == {"key", "value"} - set(body)


def test_null_value_is_a_value(client: FlaskClient) -> None:
    assert put(client, "k", None).status_code == 201
    assert get(client, "k").get_json()["value"] is None


@pytest.mark.parametrize("key", ["invalid key", "", "a" * 251, "é" * 126, "tab\t", "nul\x00"])
def test_invalid_keys_are_rejected(client: FlaskClient, key: str) -> None:
    response = put(client, key)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_key"
    assert body["details"]["key"] == key
    assert body["details"]["issue"]


@pytest.mark.parametrize("key", ["a" * 250, "é" * 125, "a:b/c?d#e%20f&g", "ключ"])
def test_longest_and_unusual_keys_are_accepted(client: FlaskClient, key: str) -> None:
    assert put(client, key, 1).status_code == 201
    response = client.post("/cache/batch", json={"keys": [key]})
    assert response.get_json()["entries"][0]["key"] == key


def test_value_too_large(make_app: AppFactory) -> None:
    client = authorized_client(make_app(max_value_bytes=100))
    # A JSON string of 98 characters is 100 bytes with its quotes: the limit, allowed.
    assert put(client, "fits", "x" * 98).status_code == 201
    response = put(client, "big", "x" * 99)
    assert response.status_code == 413
    body = response.get_json()
    assert body["error"] == "value_too_large"
    assert body["details"]["max_bytes"] == 100
    assert body["details"]["size_bytes"] == 101
    assert get(client, "big").status_code == 404


def test_value_too_large_counts_decoded_binary_bytes(make_app: AppFactory) -> None:
    client = authorized_client(make_app(max_value_bytes=100))
    # 100 raw bytes are 136 characters of base64: it is the raw size that counts.
    assert (
        put(client, "b", base64.b64encode(b"\0" * 100).decode(), type="binary").status_code == 201
    )
    too_big = put(client, "c", base64.b64encode(b"\0" * 101).decode(), type="binary")
    assert too_big.status_code == 413


def test_lone_surrogate_value_is_rejected(client: FlaskClient) -> None:
    body = b'{"key": "k", "value": ["\\ud800", 1180591620717411303424]}'
    response = client.post("/cache", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


# GET /cache/{key}


def test_get_returns_exactly_key_value_namespace(client: FlaskClient) -> None:
    put(client, "user:1", {"a": 1}, namespace="users", tags=["t"])
    response = get(client, "user:1", namespace="users")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == {"key": "user:1", "value": {"a": 1}, "namespace": "users"}


def test_get_defaults_to_the_default_namespace(client: FlaskClient) -> None:
    put(client, "k", 1)
    assert get(client, "k").get_json()["namespace"] == "default"
    assert get(client, "k", namespace="default").status_code == 200


def test_include_metadata_has_every_contract_field(client: FlaskClient) -> None:
    before = whole_seconds_now()
    put(client, "k", {"a": [1, 2]}, ttl=600, tags=["x", "y"])
    body = metadata(client, "k")
    after = whole_seconds_now()
    assert set(body) == {"key", "value", "namespace"} | METADATA_FIELDS
    assert body["type"] == "json"
    assert body["ttl"] == 600
    assert 598 <= body["ttl_remaining"] <= 600
    created = parse_time(body["created_at"])
    assert before <= created <= after
    assert parse_time(body["updated_at"]) == created
    assert parse_time(body["expires_at"]) - created == timedelta(seconds=600)
    assert body["hit_count"] == 1
    assert before <= parse_time(body["last_accessed"]) <= after
    assert body["tags"] == ["x", "y"]
    assert body["size_bytes"] == len(b'{"a":[1,2]}')
    assert body["stored_bytes"] >= body["size_bytes"]
    assert body["compression"] == "none"


def test_updated_at_moves_and_created_at_stays(client: FlaskClient, app: Flask) -> None:
    cache = app.extensions["cacheservice"].cache
    start = cache.clock()
    cache.clock = lambda: start - 3_600_000
    put(client, "k", 1, ttl=86_400)
    cache.clock = lambda: start
    put(client, "k", 2, ttl=86_400)
    body = metadata(client, "k")
    assert parse_time(body["updated_at"]) - parse_time(body["created_at"]) == timedelta(hours=1)


def test_hit_count_counts_every_read_including_this_one(client: FlaskClient) -> None:
    put(client, "k", 1)
    assert [metadata(client, "k")["hit_count"] for _ in range(3)] == [1, 2, 3]
    get(client, "k")
    assert metadata(client, "k")["hit_count"] == 5


def test_replacing_keeps_the_hit_count(client: FlaskClient) -> None:
    put(client, "k", 1)
    get(client, "k")
    put(client, "k", 2)
    assert metadata(client, "k")["hit_count"] == 2


def test_last_accessed_is_this_reads_time(client: FlaskClient, app: Flask) -> None:
    cache = app.extensions["cacheservice"].cache
    now = cache.clock()
    put(client, "k", 1)
    cache.clock = lambda: now + 120_000
    body = metadata(client, "k")
    assert parse_time(body["last_accessed"]) == datetime.fromtimestamp((now + 120_000) // 1000, UTC)
    assert parse_time(body["last_accessed"]) - parse_time(body["created_at"]) >= timedelta(
        seconds=119
    )


def test_etag_and_if_none_match(client: FlaskClient) -> None:
    put(client, "k", {"v": 1})
    first = get(client, "k")
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    assert get(client, "k", include_metadata="true").headers["ETag"] == etag

    not_modified = client.get("/cache/k", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.data == b""
    assert not_modified.headers["ETag"] == etag

    other = client.get("/cache/k", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200

    put(client, "k", {"v": 2})
    changed = client.get("/cache/k", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.get_json()["value"] == {"v": 2}


def test_etag_differs_between_types_of_the_same_text(client: FlaskClient) -> None:
    put(client, "a", "x")
    put(client, "b", "x", type="string")
    assert get(client, "a").headers["ETag"] != get(client, "b").headers["ETag"]


def test_miss_is_404_key_not_found(client: FlaskClient) -> None:
    response = get(client, "absent")
    assert response.status_code == 404
    body = response.get_json()
    assert set(body) == {"error", "message", "details"}
    assert body["error"] == "key_not_found"
    assert body["details"]["key"] == "absent"
    assert "ETag" not in response.headers


def test_namespaces_isolate(client: FlaskClient) -> None:
    put(client, "k", "in-a", namespace="a")
    put(client, "k", "in-b", namespace="b", tags=["t"])
    assert get(client, "k", namespace="a").get_json()["value"] == "in-a"
    assert get(client, "k", namespace="b").get_json()["value"] == "in-b"
    assert get(client, "k").status_code == 404
    assert client.delete("/cache/k?namespace=a").status_code == 200
    assert get(client, "k", namespace="a").status_code == 404
    assert get(client, "k", namespace="b").get_json()["value"] == "in-b"


def test_url_encoded_slash_in_key(client: FlaskClient) -> None:
    put(client, "a/b", 1)
    response = client.get("/cache/a%2Fb")
    assert response.status_code == 200
    assert response.get_json()["key"] == "a/b"
    # The unencoded form names the same key.
    assert client.get("/cache/a/b").get_json()["key"] == "a/b"
    assert client.delete("/cache/a%2Fb").status_code == 200
    assert client.get("/cache/a%2Fb").status_code == 404


def test_url_encoded_unicode_and_reserved_characters_in_key(client: FlaskClient) -> None:
    key = "ключ:a?b#c%d"
    put(client, key, 1)
    response = client.get("/cache/%D0%BA%D0%BB%D1%8E%D1%87:a%3Fb%23c%25d")
    assert response.status_code == 200
    assert response.get_json()["key"] == key


@pytest.mark.parametrize("path", ["/cache/invalid%20key", "/cache/tab%09"])
def test_invalid_key_in_path(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_key"


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("1", True), ("false", False)])
def test_include_metadata_flag_values(client: FlaskClient, raw: str, expected: bool) -> None:
    put(client, "k", 1)
    assert ("hit_count" in get(client, "k", include_metadata=raw).get_json()) is expected


def test_invalid_query_parameters_are_400(client: FlaskClient) -> None:
    put(client, "k", 1)
    for query in ({"include_metadata": "maybe"}, {"namespace": "Bad!"}, {"namespace": "a\n"}):
        response = get(client, "k", **query)
        assert response.status_code == 400, query
        assert response.get_json()["error"] == "invalid_request"


# DELETE /cache/{key}


def test_delete_then_404(client: FlaskClient) -> None:
    put(client, "k", 1, namespace="users")
    before = whole_seconds_now()
    response = client.delete("/cache/k?namespace=users")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"key", "namespace", "deleted", "deleted_at"}
    assert body["key"] == "k"
    assert body["namespace"] == "users"
    assert body["deleted"] is True
    assert before <= parse_time(body["deleted_at"]) <= whole_seconds_now()
    assert get(client, "k", namespace="users").status_code == 404

    again = client.delete("/cache/k?namespace=users")
    assert again.status_code == 404
    assert again.get_json()["error"] == "key_not_found"


def test_delete_only_in_its_namespace(client: FlaskClient) -> None:
    put(client, "k", 1, namespace="users")
    assert client.delete("/cache/k").status_code == 404
    assert get(client, "k", namespace="users").status_code == 200


def test_delete_removes_tag_and_index_memberships(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    bucket = keyspace(app).bucket("users", "k")
    put(client, "k", 1, namespace="users", tags=["a", "b"])
    assert redis_client.zscore(bucket.index, "k") is not None
    client.delete("/cache/k?namespace=users")
    assert redis_client.exists(bucket.entry("k")) == 0
    assert redis_client.zscore(bucket.index, "k") is None
    assert redis_client.zscore(bucket.tag("a"), "k") is None
    assert redis_client.zscore(bucket.tag("b"), "k") is None
    invalidated = client.post("/cache/invalidate", json={"namespace": "users"}).get_json()
    assert invalidated["total_invalidated"] == 0


def test_recreated_entry_starts_fresh(client: FlaskClient) -> None:
    put(client, "k", 1, tags=["a"])
    get(client, "k")
    client.delete("/cache/k")
    assert put(client, "k", 2).status_code == 201
    body = metadata(client, "k")
    assert body["hit_count"] == 1
    assert body["tags"] == []
