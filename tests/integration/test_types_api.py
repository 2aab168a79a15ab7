"""Every value type through ``POST /cache``, ``PUT /cache/{key}``, GET and batch (real Redis)."""

from __future__ import annotations

import base64
import os
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.store.keys import KeySpace

JSON_VALUES = [
    {"name": "Ann", "age": 31, "tags": ["a", "b"], "nested": {"deep": [1, {"x": None}]}},
    [1, "two", 3.5, None, True, {"k": "v"}, []],
    "plain text with ünïcödé ✓",
    "",
    0,
    -42,
    12345678901234567890,
    3.25,
    -1e-7,
    True,
    False,
    None,
    {},
    [],
]


def post(client: FlaskClient, key: str, value: Any, **fields: Any) -> TestResponse:
    return client.post("/cache", json={"key": key, "value": value, **fields})


def read(client: FlaskClient, key: str, **query: Any) -> dict[str, Any]:
    response = client.get(f"/cache/{key}", query_string=query)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def batch_values(client: FlaskClient, keys: list[str]) -> dict[str, Any]:
    response = client.post("/cache/batch", json={"keys": keys})
    assert response.status_code == 200
    body = response.get_json()
    assert body["missing_keys"] == []
    return {entry["key"]: entry["value"] for entry in body["entries"]}


def entry_hash(app: Flask, redis_client: redis.Redis, key: str, namespace: str = "default") -> str:
    buckets = app.extensions["cacheservice"].settings.namespace_buckets
    return KeySpace(buckets).bucket(namespace, key).entry(key)


# Every type through POST, GET and batch


@pytest.mark.parametrize("value", JSON_VALUES)
def test_json_values_round_trip_through_post_get_and_batch(client: FlaskClient, value: Any) -> None:
    assert post(client, "doc", value, type="json").status_code == 201
    body = read(client, "doc", include_metadata="true")
    assert body["value"] == value
    assert type(body["value"]) is type(value)
    assert body["type"] == "json"
    assert batch_values(client, ["doc"]) == {"doc": value}


def test_json_is_the_default_type(client: FlaskClient) -> None:
    post(client, "doc", {"a": 1})
    assert read(client, "doc", include_metadata="true")["type"] == "json"


def test_string_round_trips(client: FlaskClient) -> None:
    text = "Grüße, 世界 🌍\nline two\ttab"
    assert post(client, "greeting", text, type="string").status_code == 201
    body = read(client, "greeting", include_metadata="true")
    assert body["value"] == text
    assert body["type"] == "string"
    assert body["size_bytes"] == len(text.encode("utf-8"))
    assert batch_values(client, ["greeting"]) == {"greeting": text}


def test_binary_round_trips_as_base64(client: FlaskClient) -> None:
    data = bytes(range(256)) * 3
    encoded = base64.b64encode(data).decode("ascii")
    assert post(client, "blob", encoded, type="binary").status_code == 201
    body = read(client, "blob", include_metadata="true")
    assert base64.b64decode(body["value"]) == data
    assert body["type"] == "binary"
    assert body["size_bytes"] == len(data)
    assert batch_values(client, ["blob"]) == {"blob": encoded}


def test_list_keeps_mixed_elements_in_order(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    items = [3, "two", {"one": [1]}, None, True, 2.5, [], "3", 3]
    assert post(client, "queue", items, type="list").status_code == 201
    body = read(client, "queue", include_metadata="true")
    assert body["value"] == items
    assert body["type"] == "list"
    assert batch_values(client, ["queue"]) == {"queue": items}
    # Stored as a native Redis list beside the entry hash, one JSON text per element.
    prefix = KeySpace(16).bucket("default", "queue").prefix
    assert redis_client.lrange(f"{prefix}c:queue", 0, -1) == [
        b"3",
        b'"two"',
        b'{"one":[1]}',
        b"null",
        b"true",
        b"2.5",
        b"[]",
        b'"3"',
        b"3",
    ]


def test_set_is_returned_sorted_and_deduplicated(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    members = ["pear", "apple", "fig", "apple", "Zebra", "pear", "äpfel"]
    assert post(client, "fruit", members, type="set").status_code == 201
    body = read(client, "fruit", include_metadata="true")
    expected = sorted(set(members))
    assert body["value"] == expected
    assert body["type"] == "set"
    assert body["size_bytes"] == sum(len(m.encode()) for m in expected)
    assert batch_values(client, ["fruit"]) == {"fruit": expected}
    prefix = KeySpace(16).bucket("default", "fruit").prefix
    assert redis_client.scard(f"{prefix}c:fruit") == len(expected)


def test_every_type_in_one_batch(client: FlaskClient) -> None:
    values = {
        "j": ({"a": [1, 2]}, "json"),
        "s": ("text", "string"),
        "b": (base64.b64encode(b"\x00\xff").decode(), "binary"),
        "l": ([1, "x"], "list"),
        "t": (["b", "a"], "set"),
    }
    for key, (value, value_type) in values.items():
        assert post(client, key, value, type=value_type).status_code == 201
    response = client.post(
        "/cache/batch", json={"keys": ["t", "l", "b", "s", "j"], "include_metadata": True}
    )
    entries = response.get_json()["entries"]
    assert [entry["key"] for entry in entries] == ["t", "l", "b", "s", "j"]
    by_key = {entry["key"]: entry for entry in entries}
    for key, (value, value_type) in values.items():
        assert by_key[key]["type"] == value_type
        expected = sorted(value) if value_type == "set" else value
        assert by_key[key]["value"] == expected


def test_replacing_a_list_with_a_json_value_drops_the_collection(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    post(client, "k", [1, 2, 3], type="list")
    assert post(client, "k", {"now": "json"}).status_code == 200
    assert read(client, "k")["value"] == {"now": "json"}
    prefix = KeySpace(16).bucket("default", "k").prefix
    assert redis_client.exists(f"{prefix}c:k") == 0


def test_collections_expire_with_their_entry(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    post(client, "l", ["a"], type="list", ttl=100)
    prefix = KeySpace(16).bucket("default", "l").prefix
    assert 99_000 < redis_client.pttl(f"{prefix}c:l") <= 100_000


@pytest.mark.parametrize(
    ("value", "value_type"),
    [
        ({"not": "a list"}, "list"),
        ("abc", "list"),
        (["a", 1], "set"),
        ([None], "set"),
        ("abc", "set"),
        (123, "string"),
        ("not base64!", "binary"),
    ],
)
def test_value_must_fit_its_type(client: FlaskClient, value: Any, value_type: str) -> None:
    response = post(client, "k", value, type=value_type)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_unknown_type_is_400(client: FlaskClient) -> None:
    response = post(client, "k", "v", type="hash")
    assert response.status_code == 400
    assert "type" in response.get_json()["details"]


# Raw bodies: PUT /cache/{key} and Accept: application/octet-stream


def put_raw(
    client: FlaskClient, key: str, data: bytes, content_type: str, **query: Any
) -> TestResponse:
    return client.put(f"/cache/{key}", data=data, content_type=content_type, query_string=query)


def get_raw(client: FlaskClient, key: str, **query: Any) -> TestResponse:
    return client.get(
        f"/cache/{key}", headers={"Accept": "application/octet-stream"}, query_string=query
    )


def test_every_byte_value_survives_put_and_raw_get(client: FlaskClient) -> None:
    data = bytes(range(256))
    created = put_raw(client, "bytes", data, "application/octet-stream")
    assert created.status_code == 201
    assert created.get_json()["created"] is True
    response = get_raw(client, "bytes")
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.data == data
    assert response.headers["ETag"]
    # JSON readers get the same bytes as base64.
    body = read(client, "bytes", include_metadata="true")
    assert body["type"] == "binary"
    assert base64.b64decode(body["value"]) == data


def test_one_mebibyte_random_body_is_identical(client: FlaskClient) -> None:
    data = os.urandom(1024 * 1024)
    assert put_raw(client, "big", data, "application/octet-stream").status_code == 201
    response = get_raw(client, "big")
    assert response.status_code == 200
    assert response.data == data
    assert read(client, "big", include_metadata="true")["size_bytes"] == len(data)


def test_put_replaces_with_200(client: FlaskClient) -> None:
    assert put_raw(client, "k", b"one", "application/octet-stream").status_code == 201
    replaced = put_raw(client, "k", b"two", "application/octet-stream")
    assert replaced.status_code == 200
    assert replaced.get_json()["created"] is False
    assert get_raw(client, "k").data == b"two"


def test_text_plain_put_stores_a_utf8_string(client: FlaskClient) -> None:
    text = "naïve café — 東京 🚀"
    response = put_raw(client, "note", text.encode("utf-8"), "text/plain; charset=utf-8")
    assert response.status_code == 201
    body = read(client, "note", include_metadata="true")
    assert body["value"] == text
    assert body["type"] == "string"
    raw = get_raw(client, "note")
    assert raw.data == text.encode("utf-8")
    assert raw.mimetype == "text/plain"


def test_text_plain_that_is_not_utf8_is_400(client: FlaskClient) -> None:
    response = put_raw(client, "note", b"\xff\xfe\xfa", "text/plain")
    assert response.status_code == 400


def test_put_needs_a_raw_content_type(client: FlaskClient) -> None:
    response = client.put("/cache/k", json={"value": 1})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_put_query_options(client: FlaskClient, app: Flask, redis_client: redis.Redis) -> None:
    response = put_raw(
        client, "k", b"\x01\x02", "application/octet-stream", namespace="files", ttl=90, tags="a,b"
    )
    assert response.status_code == 201
    assert response.get_json()["ttl"] == 90
    body = read(client, "k", namespace="files", include_metadata="true")
    assert body["tags"] == ["a", "b"]
    assert body["ttl"] == 90
    assert 89_000 < redis_client.pttl(entry_hash(app, redis_client, "k", "files")) <= 90_000


@pytest.mark.parametrize("ttl", ["0", "abc", "1.5", "-3"])
def test_put_rejects_a_bad_query_ttl(client: FlaskClient, ttl: str) -> None:
    response = put_raw(client, "k", b"x", "application/octet-stream", ttl=ttl)
    assert response.status_code == 400
    assert "ttl" in response.get_json()["details"]


def test_accept_octet_stream_on_json_entries_answers_json(client: FlaskClient) -> None:
    post(client, "doc", {"a": 1})
    response = get_raw(client, "doc")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json()["value"] == {"a": 1}


def test_json_preferred_over_octet_stream_answers_json(client: FlaskClient) -> None:
    put_raw(client, "b", b"\x00", "application/octet-stream")
    response = client.get(
        "/cache/b", headers={"Accept": "application/json, application/octet-stream;q=0.5"}
    )
    assert response.mimetype == "application/json"
    assert response.get_json()["value"] == base64.b64encode(b"\x00").decode()


def test_raw_get_of_a_missing_key_is_a_json_404(client: FlaskClient) -> None:
    response = get_raw(client, "absent")
    assert response.status_code == 404
    assert response.get_json()["error"] == "key_not_found"
