"""``POST /cache/batch`` and ``POST /cache/batch-set`` against a real Redis."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import AppFactory
from tests.support.auth import authorized_client


def put(client: FlaskClient, key: str, value: Any = "v", **fields: Any) -> None:
    response = client.post("/cache", json={"key": key, "value": value, **fields})
    assert response.status_code in (200, 201)


def batch_get(client: FlaskClient, keys: Any, **fields: Any) -> TestResponse:
    return client.post("/cache/batch", json={"keys": keys, **fields})


def batch_set(client: FlaskClient, entries: Any, **fields: Any) -> TestResponse:
    return client.post("/cache/batch-set", json={"entries": entries, **fields})


def hit_count(client: FlaskClient, key: str, namespace: str = "default") -> int:
    response = client.get(f"/cache/{key}?namespace={namespace}&include_metadata=true")
    # This read counts itself; report the hits before it.
    count: int = response.get_json()["hit_count"] - 1
    return count


# POST /cache/batch


def test_batch_keeps_order_and_reports_missing(client: FlaskClient) -> None:
    for key in ("k3", "k1", "k5"):
        put(client, key, {"n": key}, namespace="users")
    keys = ["k1", "k2", "k3", "k4", "k5"]
    response = batch_get(client, keys, namespace="users")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"entries", "missing_keys", "total_requested", "total_found"}
    assert [entry["key"] for entry in body["entries"]] == ["k1", "k3", "k5"]
    assert body["entries"][0] == {"key": "k1", "value": {"n": "k1"}, "namespace": "users"}
    assert body["missing_keys"] == ["k2", "k4"]
    assert body["total_requested"] == 5
    assert body["total_found"] == 3


def test_batch_order_across_many_buckets(client: FlaskClient) -> None:
    keys = [f"key-{i}" for i in range(60)]
    batch_set(client, [{"key": key, "value": i} for i, key in enumerate(keys) if i % 3])
    body = batch_get(client, list(reversed(keys))).get_json()
    found = [key for key in reversed(keys) if int(key.split("-")[1]) % 3]
    assert [entry["key"] for entry in body["entries"]] == found
    assert [entry["value"] for entry in body["entries"]] == [int(k.split("-")[1]) for k in found]
    assert body["missing_keys"] == [key for key in reversed(keys) if key not in found]


def test_duplicates_are_collapsed(client: FlaskClient) -> None:
    put(client, "a", 1)
    body = batch_get(client, ["a", "b", "a", "b", "a"]).get_json()
    assert [entry["key"] for entry in body["entries"]] == ["a"]
    assert body["missing_keys"] == ["b"]
    assert body["total_requested"] == 2
    assert body["total_found"] == 1
    # A key given three times is read once.
    assert hit_count(client, "a") == 1


def test_batch_only_reads_its_namespace(client: FlaskClient) -> None:
    put(client, "k", 1, namespace="a")
    assert batch_get(client, ["k"], namespace="b").get_json()["missing_keys"] == ["k"]
    assert batch_get(client, ["k"]).get_json()["missing_keys"] == ["k"]
    assert batch_get(client, ["k"], namespace="a").get_json()["total_found"] == 1


def test_batch_include_metadata(client: FlaskClient) -> None:
    put(client, "k", [1], ttl=300, tags=["t"])
    plain = batch_get(client, ["k"]).get_json()["entries"][0]
    assert set(plain) == {"key", "value", "namespace"}
    entry = batch_get(client, ["k"], include_metadata=True).get_json()["entries"][0]
    assert entry["value"] == [1]
    assert entry["ttl"] == 300
    assert entry["tags"] == ["t"]
    assert entry["type"] == "json"
    assert entry["hit_count"] == 2
    for field in ("created_at", "updated_at", "expires_at", "last_accessed", "ttl_remaining"):
        assert entry[field] is not None


def test_found_entries_count_as_hits(client: FlaskClient) -> None:
    put(client, "a", 1)
    put(client, "b", 2)
    for _ in range(3):
        batch_get(client, ["a", "b", "missing"])
    assert hit_count(client, "a") == 3
    assert hit_count(client, "b") == 3


def test_statistics_key_is_reachable_through_batch(client: FlaskClient) -> None:
    put(client, "statistics", "s")
    put(client, "health", "h")
    body = batch_get(client, ["statistics", "health"]).get_json()
    assert [entry["value"] for entry in body["entries"]] == ["s", "h"]


def test_invalid_key_fails_the_whole_batch_with_its_index(client: FlaskClient) -> None:
    put(client, "a", 1)
    response = batch_get(client, ["a", "b", "bad key", "c"])
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_key"
    assert body["details"]["index"] == 2
    assert body["details"]["key"] == "bad key"
    # The rejected request read nothing.
    assert hit_count(client, "a") == 0


@pytest.mark.parametrize("key", ["", "a" * 251, "ctl\x01"])
def test_other_invalid_keys_in_batch(client: FlaskClient, key: str) -> None:
    response = batch_get(client, ["ok", key])
    assert response.status_code == 400
    assert response.get_json()["details"]["index"] == 1


def test_batch_limit_is_1000_keys(client: FlaskClient) -> None:
    keys = [f"k{i}" for i in range(1000)]
    ok = batch_get(client, keys)
    assert ok.status_code == 200
    assert ok.get_json()["total_requested"] == 1000
    assert len(ok.get_json()["missing_keys"]) == 1000
    too_many = batch_get(client, [*keys, "one-more"])
    assert too_many.status_code == 400
    assert too_many.get_json()["error"] == "invalid_request"
    assert "keys" in too_many.get_json()["details"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"keys": []}, "keys"),
        ({"keys": "k"}, "keys"),
        ({"keys": [1]}, "keys"),
        ({"keys": [None]}, "keys"),
        ({}, "keys"),
        ({"keys": ["k"], "include_metadata": "true"}, "include_metadata"),
        ({"keys": ["k"], "namespace": "NS"}, "namespace"),
        ({"keys": ["k"], "other": 1}, "other"),
    ],
)
def test_invalid_batch_bodies_are_400(
    client: FlaskClient, body: dict[str, Any], field: str
) -> None:
    response = client.post("/cache/batch", json=body)
    assert response.status_code == 400
    payload = response.get_json()
    assert set(payload) == {"error", "message", "details"}
    assert payload["error"] == "invalid_request"
    assert set(payload["details"]) == {field}


# POST /cache/batch-set


def test_batch_set_stores_every_entry(client: FlaskClient) -> None:
    response = batch_set(
        client,
        [
            {"key": "user:1", "value": {"n": 1}, "ttl": 60, "tags": ["user"]},
            {"key": "user:2", "value": [2], "tags": ["user", "profile"]},
            {"key": "raw", "value": base64.b64encode(b"\x00\xff").decode(), "type": "binary"},
        ],
        namespace="users",
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["total_created"] == 3
    assert body["total_updated"] == 0
    assert body["total_failed"] == 0
    assert [item["key"] for item in body["entries"]] == ["user:1", "user:2", "raw"]
    for item in body["entries"]:
        assert set(item) == {"key", "created", "created_at", "expires_at"}
        assert item["created"] is True
    found = batch_get(client, ["user:1", "user:2", "raw"], namespace="users", include_metadata=True)
    entries = found.get_json()["entries"]
    assert [entry["value"] for entry in entries] == [{"n": 1}, [2], "AP8="]
    assert [entry["ttl"] for entry in entries] == [60, 3600, 3600]
    assert entries[1]["tags"] == ["user", "profile"]
    assert entries[2]["type"] == "binary"
    invalidated = client.post("/cache/invalidate", json={"namespace": "users", "tags": ["user"]})
    assert invalidated.get_json()["total_invalidated"] == 2


def test_batch_set_mixed_items_fail_alone(make_app: AppFactory) -> None:
    client = authorized_client(make_app(max_value_bytes=100))
    put(client, "existing", "old")
    response = batch_set(
        client,
        [
            {"key": "new", "value": 1},
            {"key": "bad key", "value": 2},
            {"value": 3},
            5,
            {"key": "big", "value": "x" * 200},
            {"key": "existing", "value": "replaced"},
            {"key": "bad-tags", "value": 4, "tags": ["no spaces"]},
            {"key": "both", "value": 5, "ttl": 5, "expires_at": "2999-01-01T00:00:00Z"},
            {"key": "with-ns", "value": 6, "namespace": "other"},
            {"key": "last", "value": 7},
        ],
    )
    assert response.status_code == 200
    body = response.get_json()
    items = body["entries"]
    assert [item["key"] for item in items] == [
        "new",
        "bad key",
        None,
        None,
        "big",
        "existing",
        "bad-tags",
        "both",
        "with-ns",
        "last",
    ]
    assert [item["created"] for item in items] == [True] + [False] * 8 + [True]
    errors = {index: item["error"] for index, item in enumerate(items) if "error" in item}
    assert set(errors) == {1, 2, 3, 4, 6, 7, 8}
    for error in errors.values():
        assert set(error) == {"error", "message", "details"}
    assert errors[1]["error"] == "invalid_key"
    assert errors[1]["details"]["key"] == "bad key"
    assert errors[2]["error"] == "invalid_request"
    assert "key" in errors[2]["details"]
    assert errors[3]["error"] == "invalid_request"
    assert errors[4]["error"] == "value_too_large"
    assert errors[6]["error"] == "invalid_request"
    assert "tags" in errors[6]["details"]
    assert errors[7]["error"] == "invalid_request"
    assert errors[8]["error"] == "invalid_request"
    assert "namespace" in errors[8]["details"]
    assert body["total_created"] == 2
    assert body["total_updated"] == 1
    assert body["total_failed"] == 7

    found = batch_get(client, ["new", "existing", "last", "big", "bad-tags", "both"]).get_json()
    assert [entry["value"] for entry in found["entries"]] == [1, "replaced", 7]
    assert found["missing_keys"] == ["big", "bad-tags", "both"]


def test_batch_set_overwrite_false_refuses_existing_keys_alone(client: FlaskClient) -> None:
    put(client, "taken", "old")
    body = batch_set(
        client, [{"key": "taken", "value": "new"}, {"key": "free", "value": 1}], overwrite=False
    ).get_json()
    taken, free = body["entries"]
    assert taken["created"] is False
    assert taken["error"]["error"] == "key_exists"
    assert taken["error"]["details"]["key"] == "taken"
    assert free["created"] is True
    assert (body["total_created"], body["total_updated"], body["total_failed"]) == (1, 0, 1)
    assert client.get("/cache/taken").get_json()["value"] == "old"
    assert client.get("/cache/free").get_json()["value"] == 1


def test_batch_set_updates_are_counted(client: FlaskClient) -> None:
    put(client, "a", 1, tags=["old"])
    body = batch_set(client, [{"key": "a", "value": 2, "tags": ["new"]}]).get_json()
    assert body["entries"][0]["created"] is False
    assert "error" not in body["entries"][0]
    assert (body["total_created"], body["total_updated"], body["total_failed"]) == (0, 1, 0)
    old = client.post("/cache/invalidate", json={"tags": ["old"]}).get_json()
    assert old["total_invalidated"] == 0


def test_batch_set_same_key_twice_later_wins(client: FlaskClient) -> None:
    body = batch_set(client, [{"key": "k", "value": 1}, {"key": "k", "value": 2}]).get_json()
    assert [item["created"] for item in body["entries"]] == [True, False]
    assert (body["total_created"], body["total_updated"]) == (1, 1)
    assert client.get("/cache/k").get_json()["value"] == 2


def test_batch_set_uses_its_namespace(client: FlaskClient) -> None:
    batch_set(client, [{"key": "k", "value": 1}], namespace="ns1")
    assert client.get("/cache/k?namespace=ns1").status_code == 200
    assert client.get("/cache/k").status_code == 404


def test_batch_set_limit_is_1000_entries(client: FlaskClient) -> None:
    entries = [{"key": f"k{i}", "value": i} for i in range(1001)]
    too_many = batch_set(client, entries)
    assert too_many.status_code == 400
    assert "entries" in too_many.get_json()["details"]
    assert batch_get(client, ["k0"]).get_json()["total_found"] == 0
    ok = batch_set(client, entries[:1000])
    assert ok.status_code == 200
    assert ok.get_json()["total_created"] == 1000


@pytest.mark.parametrize(
    "body",
    [
        {"entries": []},
        {"entries": {"key": "k", "value": 1}},
        {},
        {"entries": [{"key": "k", "value": 1}], "overwrite": "no"},
        {"entries": [{"key": "k", "value": 1}], "namespace": "Bad"},
    ],
)
def test_invalid_batch_set_bodies_are_400(client: FlaskClient, body: dict[str, Any]) -> None:
    response = client.post("/cache/batch-set", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert client.get("/cache/k").status_code == 404
