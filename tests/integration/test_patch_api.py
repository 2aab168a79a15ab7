"""``PATCH /cache/{key}``: every operation, its errors and its atomicity, on a real Redis."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.store.keys import Bucket, KeySpace
from tests.support.auth import authorized_client


@pytest.fixture(autouse=True)
def _empty_tables(database: psycopg.Connection[Any]) -> None:
    """Namespace configurations of earlier tests must not leak into these."""


def post(client: FlaskClient, key: str, value: Any = "v", **fields: Any) -> None:
    response = client.post("/cache", json={"key": key, "value": value, **fields})
    assert response.status_code in (200, 201), response.get_json()


def patch(client: FlaskClient, key: str, body: Any, namespace: str | None = None) -> TestResponse:
    query = {} if namespace is None else {"namespace": namespace}
    return client.patch(f"/cache/{key}", json=body, query_string=query)


def patched(client: FlaskClient, key: str, body: Any, namespace: str | None = None) -> Any:
    response = patch(client, key, body, namespace)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def value_of(client: FlaskClient, key: str, namespace: str = "default") -> Any:
    response = client.get(f"/cache/{key}", query_string={"namespace": namespace})
    assert response.status_code == 200
    return response.get_json()["value"]


def bucket(app: Flask, key: str, namespace: str = "default") -> Bucket:
    buckets = app.extensions["cacheservice"].settings.namespace_buckets
    return KeySpace(buckets).bucket(namespace, key)


def allow_no_expiry(client: FlaskClient, namespace: str) -> None:
    response = client.put(f"/namespaces/{namespace}", json={"allow_no_expiry": True})
    assert response.status_code == 201


def in_future(seconds: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=seconds)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# Expiry


def test_ttl_replaces_the_expiry_everywhere(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "k", ttl=60, tags=["t"])
    body = patched(client, "k", {"ttl": 500})
    assert body["key"] == "k"
    assert body["namespace"] == "default"
    assert body["ttl"] == 500
    assert 498 <= body["ttl_remaining"] <= 500
    assert "value" not in body
    where = bucket(app, "k")
    assert 499_000 < redis_client.pttl(where.entry("k")) <= 500_000
    expiry_ms = int(redis_client.hget(where.entry("k"), "ex") or 0)
    # The namespace index and the tag index move with the entry.
    assert redis_client.zscore(where.index, "k") == expiry_ms
    assert redis_client.zscore(where.tag("t"), "k") == expiry_ms


def test_ttl_returns_the_metadata(client: FlaskClient) -> None:
    post(client, "k", {"a": 1}, ttl=60, tags=["x"])
    body = patched(client, "k", {"ttl": 90})
    assert body["type"] == "json"
    assert body["tags"] == ["x"]
    assert body["size_bytes"] == len(b'{"a":1}')
    for name in ("created_at", "updated_at", "expires_at", "hit_count", "compression"):
        assert name in body


def test_expires_at_sets_an_absolute_expiry(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "k", ttl=60)
    target = in_future(1000)
    body = patched(client, "k", {"expires_at": target.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert parse_time(body["expires_at"]) == target
    assert 998 <= body["ttl"] <= 1000
    pttl = redis_client.pttl(bucket(app, "k").entry("k"))
    assert 997_000 < pttl <= 1_000_000


def test_expires_at_in_the_past_is_400(client: FlaskClient) -> None:
    post(client, "k", ttl=60)
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    response = patch(client, "k", {"expires_at": past})
    assert response.status_code == 400
    assert response.get_json()["details"]["field"] == "expires_at"


def test_extend_by_adds_to_the_remaining_time(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "k", ttl=100)
    body = patched(client, "k", {"extend_by": 50})
    assert 148 <= body["ttl_remaining"] <= 150
    assert 148 <= body["ttl"] <= 150
    assert 148_000 < redis_client.pttl(bucket(app, "k").entry("k")) <= 150_000


def test_extend_by_on_an_entry_without_expiry_is_400(client: FlaskClient) -> None:
    allow_no_expiry(client, "forever")
    post(client, "k", namespace="forever", ttl=None)
    response = patch(client, "k", {"extend_by": 10}, namespace="forever")
    assert response.status_code == 400
    assert response.get_json()["details"]["field"] == "extend_by"


def test_persist_where_the_namespace_allows_it(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    allow_no_expiry(client, "forever")
    post(client, "k", [1], type="list", namespace="forever", ttl=60, tags=["t"])
    body = patched(client, "k", {"persist": True}, namespace="forever")
    assert body["ttl"] is None
    assert body["ttl_remaining"] is None
    assert body["expires_at"] is None
    where = bucket(app, "k", "forever")
    assert redis_client.pttl(where.entry("k")) == -1
    assert redis_client.pttl(f"{where.prefix}c:k") == -1
    assert redis_client.zscore(where.index, "k") == float("inf")
    assert redis_client.zscore(where.tag("t"), "k") == float("inf")
    # A ttl brings the expiry back.
    assert patched(client, "k", {"ttl": 30}, namespace="forever")["ttl"] == 30
    assert 29_000 < redis_client.pttl(f"{where.prefix}c:k") <= 30_000


def test_persist_is_400_where_no_expiry_is_not_allowed(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "k", ttl=60)
    response = patch(client, "k", {"persist": True})
    assert response.status_code == 400
    assert response.get_json()["details"]["field"] == "persist"
    assert redis_client.pttl(bucket(app, "k").entry("k")) > 0


def test_persist_of_a_missing_key_is_404(client: FlaskClient) -> None:
    allow_no_expiry(client, "forever")
    assert patch(client, "absent", {"persist": True}, namespace="forever").status_code == 404


def test_persist_false_is_400(client: FlaskClient) -> None:
    post(client, "k", ttl=60)
    assert patch(client, "k", {"persist": False}).status_code == 400


# Tags


def invalidated(client: FlaskClient, tags: list[str]) -> int:
    response = client.post("/cache/invalidate", json={"tags": tags})
    assert response.status_code == 200
    total: int = response.get_json()["total_invalidated"]
    return total


def test_tags_are_replaced_for_invalidation(client: FlaskClient) -> None:
    post(client, "k", ttl=60, tags=["old", "kept"])
    body = patched(client, "k", {"tags": ["new", "kept", "new"]})
    assert body["tags"] == ["new", "kept"]
    assert invalidated(client, ["old"]) == 0
    assert value_of(client, "k") == "v"
    assert invalidated(client, ["new"]) == 1
    assert client.get("/cache/k").status_code == 404


def test_tags_can_be_emptied(client: FlaskClient) -> None:
    post(client, "k", ttl=60, tags=["a"])
    assert patched(client, "k", {"tags": []})["tags"] == []
    assert invalidated(client, ["a"]) == 0
    assert value_of(client, "k") == "v"


def test_invalid_tag_is_400(client: FlaskClient) -> None:
    post(client, "k", ttl=60)
    assert patch(client, "k", {"tags": ["bad tag"]}).status_code == 400


# Lists and sets


def test_append_adds_at_the_end_in_order(client: FlaskClient) -> None:
    post(client, "l", [1, "two"], type="list")
    body = patched(client, "l", {"append": [{"three": 3}, None, "five"]})
    assert body["length"] == 5
    assert body["type"] == "list"
    assert body["size_bytes"] == len(b'1"two"{"three":3}null"five"')
    assert value_of(client, "l") == [1, "two", {"three": 3}, None, "five"]


def test_prepend_adds_at_the_start_in_the_order_given(client: FlaskClient) -> None:
    post(client, "l", ["c"], type="list")
    body = patched(client, "l", {"prepend": ["a", "b"]})
    assert body["length"] == 3
    assert value_of(client, "l") == ["a", "b", "c"]
    patched(client, "l", {"prepend": [1, 2, 3]})
    assert value_of(client, "l") == [1, 2, 3, "a", "b", "c"]


def test_prepend_of_more_than_one_chunk_keeps_order(client: FlaskClient) -> None:
    post(client, "l", ["end"], type="list")
    patched(client, "l", {"prepend": list(range(1000))})
    assert value_of(client, "l") == [*range(1000), "end"]


def test_append_to_an_empty_list_gives_it_the_entry_expiry(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "l", [], type="list", ttl=80)
    assert patched(client, "l", {"append": ["x"]})["length"] == 1
    assert 79_000 < redis_client.pttl(f"{bucket(app, 'l').prefix}c:l") <= 80_000
    assert value_of(client, "l") == ["x"]


def test_add_and_remove_track_members_and_sizes(client: FlaskClient) -> None:
    post(client, "s", ["a", "bb"], type="set")
    body = patched(client, "s", {"add": ["ccc", "a", "ccc"]})
    assert body["length"] == 3
    assert body["size_bytes"] == 6
    body = patched(client, "s", {"remove": ["a", "zz"]})
    assert body["length"] == 2
    assert body["size_bytes"] == 5
    assert value_of(client, "s") == ["bb", "ccc"]
    body = patched(client, "s", {"remove": ["bb", "ccc"]})
    assert body["length"] == 0
    assert body["size_bytes"] == 0
    assert value_of(client, "s") == []


def test_append_past_max_value_bytes_is_413(client: FlaskClient) -> None:
    assert client.put("/namespaces/small", json={"max_value_bytes": 10}).status_code == 201
    post(client, "l", ["abc"], type="list", namespace="small")  # '"abc"': 5 bytes
    for change in ({"append": ["abcd"]}, {"prepend": ["abcd"]}):  # 6 more: 11 bytes
        response = patch(client, "l", change, namespace="small")
        assert response.status_code == 413
        assert response.get_json()["error"] == "value_too_large"
    assert value_of(client, "l", "small") == ["abc"]
    assert patched(client, "l", {"append": ["ab"]}, namespace="small")["size_bytes"] == 9


def test_add_past_max_value_bytes_is_413(client: FlaskClient) -> None:
    assert client.put("/namespaces/small", json={"max_value_bytes": 10}).status_code == 201
    post(client, "s", ["aaaa"], type="set", namespace="small")
    response = patch(client, "s", {"add": ["bbbbbbb"]}, namespace="small")
    assert response.status_code == 413
    assert response.get_json()["error"] == "value_too_large"
    # Members already present add nothing to the size.
    body = patched(client, "s", {"add": ["aaaa", "bbb"]}, namespace="small")
    assert body["size_bytes"] == 7
    assert value_of(client, "s", "small") == ["aaaa", "bbb"]


def test_set_elements_must_be_strings(client: FlaskClient) -> None:
    post(client, "s", ["a"], type="set")
    assert patch(client, "s", {"add": [1]}).status_code == 400
    assert value_of(client, "s") == ["a"]


@pytest.mark.parametrize(
    ("value", "value_type", "change"),
    [
        ({"a": 1}, "json", {"append": [1]}),
        ("text", "string", {"prepend": ["x"]}),
        (["a"], "set", {"append": ["b"]}),
        ([1], "list", {"add": ["b"]}),
        ({"a": 1}, "json", {"remove": ["a"]}),
    ],
)
def test_element_operations_on_the_wrong_type_are_400(
    client: FlaskClient, value: Any, value_type: str, change: dict[str, Any]
) -> None:
    post(client, "k", value, type=value_type)
    response = patch(client, "k", change)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.get_json()["details"]["field"] == next(iter(change))


@pytest.mark.parametrize(
    "change",
    [
        {"ttl": 10},
        {"expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        {"extend_by": 5},
        {"tags": ["a"]},
        {"append": [1]},
        {"add": ["a"]},
    ],
)
def test_missing_key_is_404(client: FlaskClient, change: dict[str, Any]) -> None:
    response = patch(client, "absent", change)
    assert response.status_code == 404
    assert response.get_json()["error"] == "key_not_found"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"ttl": 10, "extend_by": 5},
        {"append": [1], "prepend": [2]},
        {"tags": ["a"], "persist": True},
        {"append": []},
        {"ttl": 0},
        {"ttl": "10"},
        {"extend_by": True},
        {"unknown": 1},
        [],
    ],
)
def test_exactly_one_valid_operation(client: FlaskClient, body: Any) -> None:
    post(client, "k", [1], type="list", ttl=60)
    response = patch(client, "k", body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_patch_moves_updated_at_not_created_at(client: FlaskClient) -> None:
    post(client, "k", ttl=60)
    before = client.get("/cache/k?include_metadata=true").get_json()
    body = patched(client, "k", {"ttl": 70})
    assert body["created_at"] == before["created_at"]
    assert body["updated_at"] >= before["updated_at"]


def test_sliding_entry_slides_by_its_patched_ttl(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "k", ttl=30, sliding=True)
    patched(client, "k", {"ttl": 300})
    assert client.get("/cache/k").status_code == 200
    assert 299_000 < redis_client.pttl(bucket(app, "k").entry("k")) <= 300_000


# Atomicity


def test_concurrent_appends_lose_nothing(app: Flask, client: FlaskClient) -> None:
    threads_count, appends = 8, 25
    post(client, "log", [], type="list", ttl=600)
    failures: list[int] = []
    start = threading.Barrier(threads_count)

    def append_many(thread: int) -> None:
        own = authorized_client(app)
        start.wait()
        for index in range(appends):
            response = own.patch("/cache/log", json={"append": [f"{thread}-{index}"]})
            if response.status_code != 200:
                failures.append(response.status_code)

    workers = [threading.Thread(target=append_many, args=(n,)) for n in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    items = value_of(client, "log")
    assert len(items) == threads_count * appends
    assert set(items) == {f"{t}-{i}" for t in range(threads_count) for i in range(appends)}
    # Each thread's own appends stay in the order it made them.
    for thread in range(threads_count):
        mine = [item for item in items if item.startswith(f"{thread}-")]
        assert mine == [f"{thread}-{i}" for i in range(appends)]


def test_concurrent_adds_lose_nothing(app: Flask, client: FlaskClient) -> None:
    threads_count, adds = 6, 20
    post(client, "members", [], type="set", ttl=600)
    start = threading.Barrier(threads_count)
    failures: list[int] = []

    def add_many(thread: int) -> None:
        own = authorized_client(app)
        start.wait()
        for index in range(adds):
            response = own.patch("/cache/members", json={"add": [f"{thread}-{index}"]})
            if response.status_code != 200:
                failures.append(response.status_code)

    workers = [threading.Thread(target=add_many, args=(n,)) for n in range(threads_count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    body = client.get("/cache/members?include_metadata=true").get_json()
    assert len(body["value"]) == threads_count * adds
    assert body["size_bytes"] == sum(len(member) for member in body["value"])
