"""Compression configured per namespace, through the API, on a real Redis and Postgres."""

from __future__ import annotations

import base64
import os
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from cacheservice.store.keys import KeySpace
from tests.conftest import AppFactory
from tests.support.auth import authorized_client

# About 4 KiB of JSON that compresses well.
DOCUMENT = {
    "items": [
        {"id": index, "name": f"item-{index}", "description": "a fairly repetitive description"}
        for index in range(50)
    ]
}
HEADER_CODES = {"none": b"n", "gzip": b"g", "lz4": b"l", "zstd": b"z", "zstd+dict": b"d"}


@pytest.fixture(autouse=True)
def _empty_tables(database: psycopg.Connection[Any]) -> None:
    """Every test starts without stored configurations or dictionaries (ids keep growing)."""
    database.execute("TRUNCATE compression_dictionaries")


def configure(client: FlaskClient, namespace: str, **compression: Any) -> None:
    response = client.put(f"/namespaces/{namespace}", json={"compression": compression})
    assert response.status_code in (200, 201), response.get_json()


def change(client: FlaskClient, namespace: str, **compression: Any) -> None:
    response = client.patch(f"/namespaces/{namespace}", json={"compression": compression})
    assert response.status_code == 200, response.get_json()


def post(client: FlaskClient, namespace: str, key: str, value: Any, **fields: Any) -> None:
    body = {"key": key, "value": value, "namespace": namespace, **fields}
    response = client.post("/cache", json=body)
    assert response.status_code in (200, 201), response.get_json()


def read(client: FlaskClient, namespace: str, key: str) -> dict[str, Any]:
    response = client.get(
        f"/cache/{key}", query_string={"namespace": namespace, "include_metadata": "true"}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def stored_blob(app: Flask, redis_client: redis.Redis, namespace: str, key: str) -> bytes:
    buckets = app.extensions["cacheservice"].settings.namespace_buckets
    blob = redis_client.hget(KeySpace(buckets).bucket(namespace, key).entry(key), "v")
    assert isinstance(blob, bytes)
    return blob


def dictionary_id_of(blob: bytes) -> int:
    return int.from_bytes(blob[3:5], "big")


@pytest.mark.parametrize(
    ("algorithm", "level"),
    [("gzip", None), ("gzip", 1), ("lz4", None), ("lz4", 16), ("zstd", None), ("zstd", 19)],
)
def test_each_codec_round_trips_every_type(
    client: FlaskClient, app: Flask, redis_client: redis.Redis, algorithm: str, level: int | None
) -> None:
    configure(client, "packed", algorithm=algorithm, level=level, min_bytes=64)
    text = "compress me " * 200
    data = b"\x00\x01\x02\x03" * 1000
    post(client, "packed", "doc", DOCUMENT)
    post(client, "packed", "text", text, type="string")
    post(client, "packed", "b64", base64.b64encode(data).decode(), type="binary")
    raw = client.put(
        "/cache/raw?namespace=packed", data=data, content_type="application/octet-stream"
    )
    assert raw.status_code == 201
    for key, expected in (("doc", DOCUMENT), ("text", text)):
        body = read(client, "packed", key)
        assert body["value"] == expected
        assert body["compression"] == algorithm
        assert body["stored_bytes"] < body["size_bytes"]
        assert stored_blob(app, redis_client, "packed", key)[2:3] == HEADER_CODES[algorithm]
    for key in ("b64", "raw"):
        assert base64.b64decode(read(client, "packed", key)["value"]) == data
        response = client.get(
            f"/cache/{key}?namespace=packed", headers={"Accept": "application/octet-stream"}
        )
        assert response.data == data
    batch = client.post("/cache/batch", json={"namespace": "packed", "keys": ["doc", "text"]})
    assert [entry["value"] for entry in batch.get_json()["entries"]] == [DOCUMENT, text]


def test_values_under_min_bytes_are_stored_as_they_are(client: FlaskClient) -> None:
    configure(client, "packed", algorithm="gzip", min_bytes=1000)
    post(client, "packed", "small", "y" * 999, type="string")
    post(client, "packed", "large", "y" * 1000, type="string")
    assert read(client, "packed", "small")["compression"] == "none"
    assert read(client, "packed", "large")["compression"] == "gzip"


def test_incompressible_values_are_stored_as_they_are(client: FlaskClient) -> None:
    configure(client, "packed", algorithm="zstd", min_bytes=0)
    data = os.urandom(4096)
    post(client, "packed", "noise", base64.b64encode(data).decode(), type="binary")
    body = read(client, "packed", "noise")
    assert body["compression"] == "none"
    assert base64.b64decode(body["value"]) == data


def test_lists_and_sets_are_not_compressed(client: FlaskClient) -> None:
    configure(client, "packed", algorithm="gzip", min_bytes=0)
    post(client, "packed", "l", ["a" * 500, "a" * 500], type="list")
    body = read(client, "packed", "l")
    assert body["value"] == ["a" * 500, "a" * 500]
    assert body["compression"] == "none"


def test_entries_stay_readable_across_configuration_changes(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    steps = [("gzip", None), ("lz4", None), ("zstd", 5), ("none", None), ("gzip", 9)]
    for index, (algorithm, level) in enumerate(steps):
        change(client, "evolving", algorithm=algorithm, level=level, min_bytes=64)
        post(client, "evolving", f"k{index}", DOCUMENT | {"step": index})
    for index, (algorithm, _) in enumerate(steps):
        body = read(client, "evolving", f"k{index}")
        assert body["value"] == DOCUMENT | {"step": index}
        # Each entry reports what was applied to it, not today's configuration.
        assert body["compression"] == algorithm
        blob = stored_blob(app, redis_client, "evolving", f"k{index}")
        assert blob[2:3] == HEADER_CODES[algorithm]


def test_switching_off_compression_keeps_working_with_a_stored_level(client: FlaskClient) -> None:
    configure(client, "packed", algorithm="gzip", level=9, min_bytes=0)
    post(client, "packed", "before", DOCUMENT)
    # The level stays in the stored configuration; it must not break writes without compression.
    change(client, "packed", algorithm="none")
    post(client, "packed", "after", DOCUMENT)
    assert read(client, "packed", "before")["compression"] == "gzip"
    assert read(client, "packed", "after")["compression"] == "none"


# Trained dictionaries


def sample_value(index: int) -> dict[str, Any]:
    cities = ("Paris", "Berlin", "Rome", "Madrid")
    return {
        "user_id": index,
        "name": f"user-{index}",
        "email": f"user{index}@example.com",
        "roles": ["reader", "writer"],
        "address": {"street": f"{index} Main Street", "city": cities[index % 4]},
        "preferences": {"theme": "dark", "language": "en", "notifications": True},
    }


def write_samples(client: FlaskClient, namespace: str, start: int, count: int) -> None:
    entries = [{"key": f"s{i}", "value": sample_value(i)} for i in range(start, start + count)]
    response = client.post("/cache/batch-set", json={"namespace": namespace, "entries": entries})
    assert response.get_json()["total_failed"] == 0


def train(client: FlaskClient, namespace: str) -> dict[str, Any]:
    response = client.post(f"/namespaces/{namespace}/dictionary")
    assert response.status_code == 201, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_dictionary_entries_stay_readable_after_retraining(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    configure(client, "profiles", algorithm="zstd", dictionary=True, min_bytes=64)
    write_samples(client, "profiles", 0, 40)
    # No dictionary trained yet: plain zstd.
    assert read(client, "profiles", "s0")["compression"] == "zstd"
    first = train(client, "profiles")
    assert first["namespace"] == "profiles"
    assert first["samples"] == 40
    assert 0 < first["size_bytes"] <= 16 * 1024
    assert first["created_at"].endswith("Z")
    post(client, "profiles", "one", sample_value(1000))
    body = read(client, "profiles", "one")
    assert body["compression"] == "zstd+dict"
    assert body["value"] == sample_value(1000)
    blob = stored_blob(app, redis_client, "profiles", "one")
    assert blob[2:3] == b"d"
    assert dictionary_id_of(blob) == first["dictionary_id"]

    write_samples(client, "profiles", 40, 40)
    second = train(client, "profiles")
    assert second["dictionary_id"] > first["dictionary_id"]
    post(client, "profiles", "two", sample_value(2000))
    assert (
        dictionary_id_of(stored_blob(app, redis_client, "profiles", "two"))
        == (second["dictionary_id"])
    )
    # Entries of the first dictionary, and from before any, read back exactly.
    for key, expected in (
        ("one", sample_value(1000)),
        ("two", sample_value(2000)),
        ("s0", sample_value(0)),
    ):
        assert read(client, "profiles", key)["value"] == expected
    # A new process reads every generation too.
    fresh = authorized_client(app)
    assert fresh.get("/cache/one?namespace=profiles").get_json()["value"] == sample_value(1000)


def test_dictionaries_are_found_by_every_process(client: FlaskClient, make_app: AppFactory) -> None:
    other_app = make_app()
    other = authorized_client(other_app)
    configure(client, "profiles", algorithm="zstd", dictionary=True, min_bytes=64)
    configure(client, "orders", algorithm="zstd", dictionary=True, min_bytes=64)
    # The other process has loaded the configurations and dictionaries there were.
    assert other.get("/cache/none?namespace=profiles").status_code == 404
    write_samples(client, "profiles", 0, 30)
    write_samples(client, "orders", 100, 30)
    trained = train(client, "profiles")
    post(client, "profiles", "p", sample_value(500))
    assert read(client, "profiles", "p")["compression"] == "zstd+dict"
    # Before its next refresh, the other process trains a dictionary of its own (a later
    # id); it must still find the first process's dictionary when it meets it.
    own = train(other, "orders")
    assert own["dictionary_id"] > trained["dictionary_id"]
    response = other.get("/cache/p?namespace=profiles")
    assert response.status_code == 200
    assert response.get_json()["value"] == sample_value(500)
    post(other, "orders", "o", sample_value(600))
    assert read(client, "orders", "o")["value"] == sample_value(600)


def test_dictionary_is_used_only_when_configured(client: FlaskClient) -> None:
    configure(client, "profiles", algorithm="zstd", dictionary=True, min_bytes=64)
    write_samples(client, "profiles", 0, 30)
    train(client, "profiles")
    change(client, "profiles", dictionary=False)
    post(client, "profiles", "k", sample_value(1))
    assert read(client, "profiles", "k")["compression"] == "zstd"


def test_training_needs_enough_values(client: FlaskClient) -> None:
    response = client.post("/namespaces/empty/dictionary")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    post(client, "few", "k", sample_value(1))
    assert client.post("/namespaces/few/dictionary").status_code == 400
    assert client.post("/namespaces/Bad!/dictionary").status_code == 400


def test_values_read_back_up_to_the_largest_body_the_service_accepts(
    make_app: AppFactory,
) -> None:
    # Every value came in a body: a deployment that accepts bodies over the default bound
    # must still read its values back.
    large = make_app(max_body_bytes=100 * 1024 * 1024)
    assert large.extensions["cacheservice"].cache.decompression_limit == 100 * 1024 * 1024
    default = make_app()
    assert default.extensions["cacheservice"].cache.decompression_limit == 64 * 1024 * 1024
