"""``POST /cache/invalidate`` against a real Redis."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.store.keys import KeySpace

ENTRIES: dict[str, list[str]] = {
    "user:1": ["user", "profile"],
    "user:2": ["user"],
    "user:10": ["profile"],
    "order:1": ["order", "user"],
    "order:2": [],
    "a*b": [],
    "a?b": [],
    "axb": [],
    "[x]": [],
    "ключ:1": ["user"],
}


def seed(
    client: FlaskClient, namespace: str = "default", entries: dict[str, list[str]] = ENTRIES
) -> None:
    items = [{"key": key, "value": key, "tags": tags} for key, tags in entries.items()]
    body = client.post(
        "/cache/batch-set", json={"entries": items, "namespace": namespace}
    ).get_json()
    assert body["total_failed"] == 0


def invalidate(client: FlaskClient, **body: Any) -> TestResponse:
    return client.post("/cache/invalidate", json=body)


def invalidated(client: FlaskClient, **body: Any) -> set[str]:
    response = invalidate(client, **body)
    assert response.status_code == 200, response.get_json()
    payload = response.get_json()
    assert payload["total_invalidated"] == len(payload["invalidated_keys"])
    assert payload["truncated"] is False
    keys = set(payload["invalidated_keys"])
    assert len(keys) == len(payload["invalidated_keys"])
    return keys


def remaining(client: FlaskClient, namespace: str = "default") -> set[str]:
    body = client.post("/cache/batch", json={"keys": list(ENTRIES), "namespace": namespace})
    return {entry["key"] for entry in body.get_json()["entries"]}


def keyspace(app: Flask) -> KeySpace:
    return KeySpace(app.extensions["cacheservice"].settings.namespace_buckets)


def test_response_shape(client: FlaskClient) -> None:
    seed(client)
    response = invalidate(client, tags=["order"])
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"invalidated_keys", "total_invalidated", "truncated", "invalidated_at"}
    assert body["invalidated_keys"] == ["order:1"]
    assert body["total_invalidated"] == 1
    assert body["truncated"] is False
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["invalidated_at"])


def test_tags_match_any_by_default(client: FlaskClient) -> None:
    seed(client)
    gone = invalidated(client, tags=["profile", "order"])
    assert gone == {"user:1", "user:10", "order:1"}
    assert remaining(client) == set(ENTRIES) - gone


def test_tags_match_all(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, tags=["user", "profile"], match="all") == {"user:1"}
    assert invalidated(client, tags=["profile", "user"], match="all") == set()
    assert remaining(client) == set(ENTRIES) - {"user:1"}


def test_entries_with_several_matching_tags_count_once(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, tags=["user", "profile", "order"]) == {
        "user:1",
        "user:2",
        "user:10",
        "order:1",
        "ключ:1",
    }


def test_unknown_tag_invalidates_nothing(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, tags=["nobody-has-this"]) == set()
    assert remaining(client) == set(ENTRIES)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("user:*", {"user:1", "user:2", "user:10"}),
        ("user:?", {"user:1", "user:2"}),
        ("user:[0-1]*", {"user:1", "user:10"}),
        ("user:[^1]", {"user:2"}),
        ("*:1", {"user:1", "order:1", "ключ:1"}),
        ("a?b", {"a*b", "a?b", "axb"}),
        ("a\\*b", {"a*b"}),
        ("a\\?b", {"a?b"}),
        ("\\[x]", {"[x]"}),
        ("ключ:*", {"ключ:1"}),
        ("nothing*", set()),
        ("*", set(ENTRIES)),
    ],
)
def test_pattern(client: FlaskClient, pattern: str, expected: set[str]) -> None:
    seed(client)
    assert invalidated(client, pattern=pattern) == expected
    assert remaining(client) == set(ENTRIES) - expected


def test_explicit_keys(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, keys=["user:1", "missing", "order:2", "user:1"]) == {
        "user:1",
        "order:2",
    }
    assert remaining(client) == set(ENTRIES) - {"user:1", "order:2"}


def test_tags_and_pattern_intersect(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, tags=["user"], pattern="order:*") == {"order:1"}
    assert invalidated(client, tags=["user", "profile"], match="all", pattern="order:*") == set()
    assert remaining(client) == set(ENTRIES) - {"order:1"}


def test_keys_and_tags_intersect(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, keys=["user:1", "user:2", "order:2"], tags=["profile"]) == {"user:1"}
    assert invalidated(client, keys=["user:2", "order:1"], tags=["user", "order"], match="all") == {
        "order:1"
    }
    assert remaining(client) == set(ENTRIES) - {"user:1", "order:1"}


def test_keys_and_pattern_intersect(client: FlaskClient) -> None:
    seed(client)
    assert invalidated(client, keys=["user:1", "order:1", "a*b", "axb"], pattern="a\\*b") == {"a*b"}
    assert invalidated(client, keys=["user:1", "order:1"], pattern="order:*") == {"order:1"}
    assert remaining(client) == set(ENTRIES) - {"a*b", "order:1"}


def test_keys_tags_and_pattern_intersect(client: FlaskClient) -> None:
    seed(client)
    gone = invalidated(
        client, keys=["user:1", "user:2", "user:10", "order:1"], tags=["user"], pattern="user:*"
    )
    assert gone == {"user:1", "user:2"}


def test_namespace_only_empties_that_namespace(client: FlaskClient) -> None:
    seed(client, "users")
    seed(client, "orders")
    seed(client)
    assert invalidated(client, namespace="users") == set(ENTRIES)
    assert remaining(client, "users") == set()
    assert remaining(client, "orders") == set(ENTRIES)
    assert remaining(client) == set(ENTRIES)


def test_default_namespace_only_empties_default(client: FlaskClient) -> None:
    seed(client)
    seed(client, "other")
    assert invalidated(client) == set(ENTRIES)
    assert remaining(client) == set()
    assert remaining(client, "other") == set(ENTRIES)


@pytest.mark.parametrize(
    "body",
    [
        {"tags": ["user"]},
        {"pattern": "*"},
        {"keys": list(ENTRIES)},
        {"tags": ["user"], "pattern": "*"},
    ],
)
def test_other_namespaces_are_untouched(client: FlaskClient, body: dict[str, Any]) -> None:
    seed(client, "mine")
    seed(client, "theirs")
    assert invalidated(client, namespace="mine", **body)
    assert remaining(client, "theirs") == set(ENTRIES)


def test_invalidation_removes_index_memberships(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    seed(client)
    invalidated(client, tags=["profile"])
    for key in ("user:1", "user:10"):
        bucket = keyspace(app).bucket("default", key)
        assert redis_client.exists(bucket.entry(key)) == 0
        assert redis_client.zscore(bucket.index, key) is None
        for tag in ("user", "profile"):
            assert redis_client.zscore(bucket.tag(tag), key) is None
    bucket = keyspace(app).bucket("default", "user:2")
    assert redis_client.zscore(bucket.tag("user"), "user:2") is not None


def test_recreated_entries_are_found_again(client: FlaskClient) -> None:
    seed(client)
    invalidated(client, tags=["user"])
    seed(client)
    assert invalidated(client, tags=["user"]) == {"user:1", "user:2", "order:1", "ключ:1"}
    assert invalidated(client, pattern="user:*") == {"user:10"}


def test_expired_entries_are_not_counted(
    client: FlaskClient, redis_client: redis.Redis, app: Flask
) -> None:
    seed(client)
    # Expire two entries the way Redis does: the hash goes, the index memberships stay.
    for key in ("user:1", "user:2"):
        entry = keyspace(app).bucket("default", key).entry(key)
        assert redis_client.pexpireat(entry, 1)
        assert redis_client.exists(entry) == 0
    assert invalidated(client, tags=["user"]) == {"order:1", "ключ:1"}
    assert invalidated(client, keys=["user:1", "user:2", "user:10"]) == {"user:10"}
    assert invalidated(client) == set(ENTRIES) - {
        "user:1",
        "user:2",
        "user:10",
        "order:1",
        "ключ:1",
    }


def test_more_than_1000_matches_are_counted_exactly_and_listed_up_to_1000(
    client: FlaskClient,
) -> None:
    keys = [f"bulk:{i}" for i in range(2000)]
    for start in (0, 1000):
        items = [{"key": key, "value": 0, "tags": ["bulk"]} for key in keys[start : start + 1000]]
        response = client.post("/cache/batch-set", json={"entries": items})
        assert response.get_json()["total_created"] == 1000
    seed(client)

    response = invalidate(client, tags=["bulk"])
    assert response.status_code == 200
    body = response.get_json()
    assert body["total_invalidated"] == 2000
    assert body["truncated"] is True
    assert len(body["invalidated_keys"]) == 1000
    assert len(set(body["invalidated_keys"])) == 1000
    assert set(body["invalidated_keys"]) <= set(keys)

    for start in (0, 1000):
        found = client.post("/cache/batch", json={"keys": keys[start : start + 1000]})
        assert found.get_json()["total_found"] == 0
    assert remaining(client) == set(ENTRIES)
    again = invalidate(client, tags=["bulk"]).get_json()
    assert again["total_invalidated"] == 0
    assert again["truncated"] is False


def test_more_than_1000_by_pattern_and_by_namespace(client: FlaskClient) -> None:
    for start in (0, 1000):
        items = [{"key": f"p:{i}", "value": i} for i in range(start, start + 1000)]
        client.post("/cache/batch-set", json={"entries": items, "namespace": "big"})
    items = [{"key": f"q:{i}", "value": i} for i in range(500)]
    client.post("/cache/batch-set", json={"entries": items, "namespace": "big"})

    by_pattern = invalidate(client, namespace="big", pattern="p:1*").get_json()
    # p:1, p:10-p:19, p:100-p:199, p:1000-p:1999.
    assert by_pattern["total_invalidated"] == 1 + 10 + 100 + 1000
    assert by_pattern["truncated"] is True
    assert len(by_pattern["invalidated_keys"]) == 1000
    assert all(key.startswith("p:1") for key in by_pattern["invalidated_keys"])

    everything = invalidate(client, namespace="big").get_json()
    assert everything["total_invalidated"] == 2500 - 1111
    assert everything["truncated"] is True
    assert len(everything["invalidated_keys"]) == 1000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"tags": []}, "tags"),
        ({"keys": []}, "keys"),
        ({"pattern": ""}, "pattern"),
        ({"tags": ["a b"]}, "tags"),
        ({"tags": "user"}, "tags"),
        ({"match": "some", "tags": ["user"]}, "match"),
        ({"namespace": "Bad"}, "namespace"),
        ({"keys": [f"k{i}" for i in range(1001)]}, "keys"),
        ({"pattern": "x" * 513}, "pattern"),
        ({"everything": True}, "everything"),
    ],
)
def test_invalid_bodies_are_400(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    seed(client)
    response = invalidate(client, **body)
    assert response.status_code == 400
    payload = response.get_json()
    assert payload["error"] == "invalid_request"
    assert field in payload["details"]
    assert remaining(client) == set(ENTRIES)


@pytest.mark.parametrize("pattern", ["user:[", "[abc", "user:\\", "[a\\"])
def test_invalid_pattern_is_400(client: FlaskClient, pattern: str) -> None:
    seed(client)
    response = invalidate(client, pattern=pattern)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert body["details"]["pattern"] == pattern
    assert body["details"]["issue"]
    assert remaining(client) == set(ENTRIES)


def test_invalid_key_in_keys_is_400_with_index(client: FlaskClient) -> None:
    seed(client)
    response = invalidate(client, keys=["user:1", "bad key"])
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_key"
    assert body["details"]["index"] == 1
    assert remaining(client) == set(ENTRIES)
