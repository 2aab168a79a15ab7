"""Encrypted namespaces through the API: what Redis holds, key rotation, moved ciphertexts."""

from __future__ import annotations

import base64
import os
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.metrics.flush import FIELD_SEPARATOR
from cacheservice.store.keys import KeySpace, MetricsKeys
from tests.conftest import AppFactory
from tests.support.auth import authorized_client

K0 = base64.b64encode(os.urandom(32)).decode()
K1 = base64.b64encode(os.urandom(32)).decode()
MARKER = b"TOP-SECRET-4111-1111-1111-1111"


@pytest.fixture(autouse=True)
def _empty_tables(database: psycopg.Connection[Any]) -> None:
    """Every test starts without stored configurations."""


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app(encryption_keys=f"k1:{K1}")


def encrypt(client: FlaskClient, namespace: str, **config: Any) -> None:
    body = {"encryption": {"enabled": True}, **config}
    response = client.put(f"/namespaces/{namespace}", json=body)
    assert response.status_code in (200, 201), response.get_json()


def post(
    client: FlaskClient, key: str, value: Any, namespace: str = "vault", **fields: Any
) -> TestResponse:
    return client.post(
        "/cache", json={"key": key, "value": value, "namespace": namespace, **fields}
    )


def get(client: FlaskClient, key: str, namespace: str = "vault") -> TestResponse:
    return client.get(
        f"/cache/{key}", query_string={"namespace": namespace, "include_metadata": "true"}
    )


def entry_key(app: Flask, key: str, namespace: str = "vault") -> str:
    buckets = app.extensions["cacheservice"].settings.namespace_buckets
    return KeySpace(buckets).bucket(namespace, key).entry(key)


def key_id_of(redis_client: redis.Redis, app: Flask, key: str, namespace: str = "vault") -> str:
    blob = redis_client.hget(entry_key(app, key, namespace), "v")
    assert isinstance(blob, bytes)
    return blob[6 : 6 + blob[5]].decode("ascii")


def counted(app: Flask, redis_client: redis.Redis, namespace: str, name: str) -> float:
    """A metric's total for a namespace, after pushing what the app still holds."""
    app.extensions["cacheservice"].metrics.push()
    total = 0.0
    for field, value in redis_client.hgetall(MetricsKeys.pending).items():
        field_namespace, _minute, metric = field.decode().split(FIELD_SEPARATOR)
        if field_namespace == namespace and metric == name:
            total += float(value)
    return total


def test_every_type_round_trips_encrypted(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    encrypt(client, "vault")
    data = bytes(range(256))
    assert post(client, "doc", {"card": "4111", "n": [1, 2]}).status_code == 201
    assert post(client, "text", "naïve ✓", type="string").status_code == 201
    assert post(client, "b64", base64.b64encode(data).decode(), type="binary").status_code == 201
    raw = client.put(
        "/cache/raw?namespace=vault", data=data, content_type="application/octet-stream"
    )
    assert raw.status_code == 201
    body = get(client, "doc").get_json()
    assert body["value"] == {"card": "4111", "n": [1, 2]}
    assert body["size_bytes"] == len(b'{"card":"4111","n":[1,2]}')
    # The header, the key id, the nonce and the tag come on top.
    assert body["stored_bytes"] > body["size_bytes"] + 12 + 16
    assert get(client, "text").get_json()["value"] == "naïve ✓"
    assert base64.b64decode(get(client, "b64").get_json()["value"]) == data
    response = client.get(
        "/cache/raw?namespace=vault", headers={"Accept": "application/octet-stream"}
    )
    assert response.data == data
    batch = client.post("/cache/batch", json={"namespace": "vault", "keys": ["doc", "text"]})
    assert batch.get_json()["total_found"] == 2
    for key in ("doc", "text", "b64", "raw"):
        assert key_id_of(redis_client, app, key) == "k1"


def test_compression_and_encryption_together(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    encrypt(client, "vault", compression={"algorithm": "zstd", "min_bytes": 0})
    value = {"rows": [{"id": i, "label": "the same label"} for i in range(100)]}
    post(client, "doc", value)
    body = get(client, "doc").get_json()
    assert body["value"] == value
    assert body["compression"] == "zstd"
    assert body["stored_bytes"] < body["size_bytes"]
    assert key_id_of(redis_client, app, "doc") == "k1"


def dump(client: redis.Redis, key: bytes) -> list[bytes]:
    """Every byte string a key holds, whatever its type."""
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == b"list":
        return list(client.lrange(key, 0, -1))
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [member for member, _score in client.zrange(key, 0, -1, withscores=True)]
    return []


def test_no_plaintext_of_an_encrypted_namespace_reaches_redis(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    encrypt(client, "vault")
    encrypt(client, "packed", compression={"algorithm": "gzip", "min_bytes": 0})
    secret = MARKER.decode()
    for namespace in ("vault", "packed"):
        post(client, "doc", {"card": secret, "note": secret * 3}, namespace=namespace, tags=["t"])
        post(client, "text", f"{secret} in a sentence", namespace=namespace, type="string")
        post(client, "bin", base64.b64encode(MARKER).decode(), namespace=namespace, type="binary")
        client.put(
            f"/cache/raw?namespace={namespace}",
            data=MARKER * 10,
            content_type="application/octet-stream",
        )
        client.post(
            "/cache/batch-set",
            json={
                "namespace": namespace,
                "entries": [{"key": f"b{i}", "value": secret} for i in range(5)],
            },
        )
        post(client, "doc", {"card": secret, "replaced": True}, namespace=namespace)
        client.patch(f"/cache/doc?namespace={namespace}", json={"tags": ["u"]})
        for key in ("doc", "text", "bin", "raw", "b0"):
            assert get(client, key, namespace).status_code == 200
        client.post("/cache/batch", json={"namespace": namespace, "keys": ["b1", "b2"]})
    app.extensions["cacheservice"].metrics.push()

    entries = 0
    for key in redis_client.scan_iter(count=1000):
        assert MARKER not in key
        held = dump(redis_client, key)
        for part in held:
            assert MARKER not in part, (key, part[:80])
        if b":e:" in key:
            entries += 1
    # Every entry was looked at (a scan that found nothing would prove nothing).
    assert entries >= 2 * 9


def test_lists_and_sets_cannot_be_encrypted(client: FlaskClient) -> None:
    encrypt(client, "vault")
    for value_type in ("list", "set"):
        response = post(client, "k", ["a"], type=value_type)
        assert response.status_code == 400
        assert response.get_json()["details"]["field"] == "type"
    batch = client.post(
        "/cache/batch-set",
        json={
            "namespace": "vault",
            "entries": [{"key": "l", "value": ["a"], "type": "list"}, {"key": "j", "value": ["a"]}],
        },
    ).get_json()
    assert batch["total_failed"] == 1
    assert batch["entries"][0]["error"]["error"] == "invalid_request"
    assert get(client, "j").get_json()["value"] == ["a"]
    assert get(client, "l").status_code == 404


def test_key_rotation(make_app: AppFactory, redis_client: redis.Redis) -> None:
    old_app = make_app(encryption_keys=f"k0:{K0}")
    old = authorized_client(old_app)
    encrypt(old, "vault")
    assert post(old, "before", {"v": 0}).status_code == 201
    assert key_id_of(redis_client, old_app, "before") == "k0"

    # Rotation: k1 goes first, k0 stays to read what it wrote.
    rotated_app = make_app(encryption_keys=f"k1:{K1},k0:{K0}")
    rotated = authorized_client(rotated_app)
    assert get(rotated, "before").get_json()["value"] == {"v": 0}
    assert post(rotated, "after", {"v": 1}).status_code == 201
    assert key_id_of(redis_client, rotated_app, "after") == "k1"
    assert post(rotated, "before", {"v": 2}).status_code == 200
    assert key_id_of(redis_client, rotated_app, "before") == "k1"
    post(old, "stale", {"v": 3})

    # k0 retired: what only it can read is a miss, counted as a decryption failure.
    retired_app = make_app(encryption_keys=f"k1:{K1}")
    retired = authorized_client(retired_app)
    assert get(retired, "after").get_json()["value"] == {"v": 1}
    assert get(retired, "before").get_json()["value"] == {"v": 2}
    missing = get(retired, "stale")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "key_not_found"
    assert counted(retired_app, redis_client, "vault", "decrypt_failures") == 1
    # And a process that only knows k0 cannot read k1's values.
    assert get(old, "after").status_code == 404


def test_copied_ciphertext_is_rejected(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    encrypt(client, "vault")
    encrypt(client, "other")
    post(client, "alice", {"balance": 100})
    post(client, "bob", {"balance": 1})
    post(client, "alice", {"balance": 5}, namespace="other")
    blob = redis_client.hget(entry_key(app, "alice"), "v")
    assert isinstance(blob, bytes)
    redis_client.hset(entry_key(app, "bob"), "v", blob)
    redis_client.hset(entry_key(app, "alice", "other"), "v", blob)

    response = get(client, "bob")
    assert response.status_code == 404
    assert response.get_json()["error"] == "key_not_found"
    batch = client.post("/cache/batch", json={"namespace": "vault", "keys": ["alice", "bob"]})
    assert batch.get_json()["missing_keys"] == ["bob"]
    assert get(client, "alice", "other").status_code == 404
    assert get(client, "alice").get_json()["value"] == {"balance": 100}
    assert counted(app, redis_client, "vault", "decrypt_failures") == 2
    assert counted(app, redis_client, "other", "decrypt_failures") == 1


@pytest.mark.parametrize("position", [2, 5, 6, -1])
def test_tampered_values_are_misses(
    client: FlaskClient, app: Flask, redis_client: redis.Redis, position: int
) -> None:
    encrypt(client, "vault")
    post(client, "k", {"secret": 1})
    blob = bytearray(redis_client.hget(entry_key(app, "k"), "v") or b"")
    # Flip a header byte (compression code, key id length, key id) or the last tag byte.
    blob[position] ^= 0x01
    redis_client.hset(entry_key(app, "k"), "v", bytes(blob))
    assert get(client, "k").status_code == 404


def test_enabling_encryption_without_keys_is_400(make_app: AppFactory) -> None:
    keyless = authorized_client(make_app())
    for response in (
        keyless.put("/namespaces/vault", json={"encryption": {"enabled": True}}),
        keyless.patch("/namespaces/vault", json={"encryption": {"enabled": True}}),
    ):
        assert response.status_code == 400
        assert response.get_json()["details"]["field"] == "encryption.enabled"
    assert keyless.get("/namespaces/vault").get_json()["configured"] is False
    assert (
        keyless.put("/namespaces/vault", json={"encryption": {"enabled": False}}).status_code == 201
    )


def test_a_process_without_keys_neither_writes_nor_reads_encrypted_values(
    make_app: AppFactory, client: FlaskClient
) -> None:
    encrypt(client, "vault")
    post(client, "k", "secret", type="string")
    keyless = authorized_client(make_app())
    refused = post(keyless, "new", "plain", type="string")
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "invalid_request"
    assert get(keyless, "k").status_code == 404
    assert get(client, "new").status_code == 404


def test_switching_encryption_keeps_entries_readable(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "plain", {"v": "before"})
    post(client, "items", ["a"], type="list")
    encrypt(client, "vault")
    post(client, "sealed", {"v": "during"})
    assert key_id_of(redis_client, app, "plain") == ""
    assert key_id_of(redis_client, app, "sealed") == "k1"
    assert get(client, "plain").get_json()["value"] == {"v": "before"}
    assert get(client, "items").get_json()["value"] == ["a"]
    response = client.patch("/namespaces/vault", json={"encryption": {"enabled": False}})
    assert response.status_code == 200
    post(client, "after", {"v": "after"})
    assert key_id_of(redis_client, app, "after") == ""
    assert get(client, "sealed").get_json()["value"] == {"v": "during"}
