"""``/namespaces`` and the rules a namespace's configuration applies to entries.

Real Redis and Postgres: the configuration lives in ``cache_configurations`` and each app's
registry serves it from memory, refreshed in the background.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cacheservice.namespaces.config import NamespaceConfig
from cacheservice.namespaces.registry import NamespaceRegistry
from cacheservice.store.keys import Bucket, KeySpace
from tests.conftest import AppFactory
from tests.support.auth import authorized_client

DEFAULTS = {
    "default_ttl": 3600,
    "max_ttl": None,
    "allow_no_expiry": False,
    "max_value_bytes": 1024 * 1024,
    "refresh_ttl_on_access": False,
    "compression": {"algorithm": "none", "level": None, "min_bytes": 256, "dictionary": False},
    "encryption": {"enabled": False},
    "status": "active",
}


@pytest.fixture(autouse=True)
def _empty_tables(database: psycopg.Connection[Any]) -> None:
    """Every test starts without stored configurations."""


def configure(client: FlaskClient, namespace: str, **config: Any) -> dict[str, Any]:
    response = client.put(f"/namespaces/{namespace}", json=config)
    assert response.status_code in (200, 201), response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def change(client: FlaskClient, namespace: str, **config: Any) -> dict[str, Any]:
    response = client.patch(f"/namespaces/{namespace}", json=config)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def post(client: FlaskClient, key: str, value: Any = "v", **fields: Any) -> TestResponse:
    return client.post("/cache", json={"key": key, "value": value, **fields})


def metadata(client: FlaskClient, key: str, namespace: str) -> dict[str, Any]:
    response = client.get(
        f"/cache/{key}", query_string={"namespace": namespace, "include_metadata": "true"}
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def bucket(app: Flask, namespace: str, key: str) -> Bucket:
    buckets = app.extensions["cacheservice"].settings.namespace_buckets
    return KeySpace(buckets).bucket(namespace, key)


def registry(app: Flask) -> NamespaceRegistry:
    found: NamespaceRegistry = app.extensions["cacheservice"].namespaces
    return found


def in_future(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


# The API


def test_unconfigured_namespace_answers_the_defaults(client: FlaskClient) -> None:
    response = client.get("/namespaces/users")
    assert response.status_code == 200
    assert response.get_json() == {
        "namespace": "users",
        "configured": False,
        "configuration": DEFAULTS,
        "status": "active",
        "created_at": None,
        "updated_at": None,
    }


def test_put_creates_with_201_then_replaces_with_200(
    client: FlaskClient, database: psycopg.Connection[Any]
) -> None:
    created = client.put("/namespaces/users", json={"default_ttl": 600, "max_ttl": 7200})
    assert created.status_code == 201
    body = created.get_json()
    assert body["configured"] is True
    assert body["configuration"]["default_ttl"] == 600
    assert body["configuration"]["max_ttl"] == 7200
    assert body["created_at"] is not None
    replaced = client.put("/namespaces/users", json={"allow_no_expiry": True})
    assert replaced.status_code == 200
    # PUT replaces the whole configuration: fields left out take the defaults again.
    assert replaced.get_json()["configuration"] == DEFAULTS | {"allow_no_expiry": True}
    assert replaced.get_json()["created_at"] == body["created_at"]
    row = database.execute(
        "SELECT configuration, status FROM cache_configurations WHERE namespace = 'users'"
    ).fetchone()
    assert row is not None
    assert row[0]["allow_no_expiry"] is True
    assert row[0]["default_ttl"] == 3600
    assert row[1] == "active"


def test_get_after_put(client: FlaskClient) -> None:
    configure(client, "users", default_ttl=60, compression={"algorithm": "gzip", "level": 9})
    body = client.get("/namespaces/users").get_json()
    assert body["configured"] is True
    assert body["configuration"]["default_ttl"] == 60
    assert body["configuration"]["compression"] == {
        "algorithm": "gzip",
        "level": 9,
        "min_bytes": 256,
        "dictionary": False,
    }


def test_list_shows_configured_namespaces_only(client: FlaskClient) -> None:
    assert client.get("/namespaces").get_json() == {"namespaces": []}
    configure(client, "zeta", default_ttl=10)
    configure(client, "alpha", status="read_only")
    post(client, "k", namespace="unconfigured")
    body = client.get("/namespaces").get_json()
    assert [item["namespace"] for item in body["namespaces"]] == ["alpha", "zeta"]
    assert all(item["configured"] for item in body["namespaces"])
    assert body["namespaces"][0]["status"] == "read_only"
    assert body["namespaces"][1]["configuration"]["default_ttl"] == 10


def test_patch_merges_into_the_stored_configuration(client: FlaskClient) -> None:
    configure(client, "users", default_ttl=60, compression={"algorithm": "gzip", "level": 9})
    body = change(client, "users", max_value_bytes=500, compression={"min_bytes": 10})
    config = body["configuration"]
    assert config["default_ttl"] == 60
    assert config["max_value_bytes"] == 500
    assert config["compression"] == {
        "algorithm": "gzip",
        "level": 9,
        "min_bytes": 10,
        "dictionary": False,
    }


def test_patch_of_an_unconfigured_namespace_starts_from_the_defaults(client: FlaskClient) -> None:
    body = change(client, "fresh", default_ttl=42)
    assert body["configured"] is True
    assert body["configuration"] == DEFAULTS | {"default_ttl": 42}


def test_concurrent_patches_of_different_fields_both_survive(
    app: Flask, database: psycopg.Connection[Any]
) -> None:
    rounds = 10
    start = threading.Barrier(2)
    failures: list[Any] = []

    def patch_field(name: str, base: int) -> None:
        own = authorized_client(app)
        for index in range(rounds):
            start.wait()
            response = own.patch("/namespaces/shared", json={name: base + index})
            if response.status_code != 200:
                failures.append(response.get_json())

    workers = [
        threading.Thread(target=patch_field, args=("default_ttl", 100)),
        threading.Thread(target=patch_field, args=("max_value_bytes", 1000)),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    row = database.execute(
        "SELECT configuration FROM cache_configurations WHERE namespace = 'shared'"
    ).fetchone()
    assert row is not None
    assert row[0]["default_ttl"] == 100 + rounds - 1
    assert row[0]["max_value_bytes"] == 1000 + rounds - 1


def test_delete_restores_the_defaults_then_404(client: FlaskClient) -> None:
    configure(client, "users", default_ttl=60)
    response = client.delete("/namespaces/users")
    assert response.status_code == 200
    assert response.get_json() == {"namespace": "users", "deleted": True}
    body = client.get("/namespaces/users").get_json()
    assert body["configured"] is False
    assert body["configuration"]["default_ttl"] == 3600
    assert post(client, "k", namespace="users").get_json()["ttl"] == 3600
    again = client.delete("/namespaces/users")
    assert again.status_code == 404
    assert again.get_json()["error"] == "not_found"


def test_delete_leaves_entries_in_place(client: FlaskClient) -> None:
    configure(client, "users", compression={"algorithm": "gzip", "min_bytes": 0})
    post(client, "k", "x" * 500, namespace="users")
    client.delete("/namespaces/users")
    body = metadata(client, "k", "users")
    assert body["value"] == "x" * 500
    assert body["compression"] == "gzip"


@pytest.mark.parametrize(
    "config",
    [
        {"default_ttl": 0},
        {"default_ttl": "60"},
        {"default_ttl": True},
        {"max_ttl": 10, "default_ttl": 20},
        {"max_ttl": 10},  # Below the default default_ttl of 3600.
        {"max_value_bytes": 0},
        {"allow_no_expiry": "yes"},
        {"status": "paused"},
        {"compression": {"algorithm": "brotli"}},
        {"compression": {"algorithm": "gzip", "level": 10}},
        {"compression": {"algorithm": "zstd", "level": 0}},
        {"compression": {"algorithm": "lz4", "level": 17}},
        {"compression": {"algorithm": "gzip", "dictionary": True}},
        {"compression": {"min_bytes": -1}},
        {"encryption": {}},
        {"encryption": {"enabled": "true"}},
        {"unknown": 1},
    ],
)
def test_invalid_configurations_are_400(client: FlaskClient, config: dict[str, Any]) -> None:
    for method in (client.put, client.patch):
        response = method("/namespaces/users", json=config)
        assert response.status_code == 400, (method, response.get_json())
        assert response.get_json()["error"] == "invalid_request"
    assert client.get("/namespaces/users").get_json()["configured"] is False


def test_patch_is_checked_against_the_stored_configuration(client: FlaskClient) -> None:
    configure(client, "users", default_ttl=60, max_ttl=120)
    response = client.patch("/namespaces/users", json={"max_ttl": 30})
    assert response.status_code == 400
    assert response.get_json()["details"]["field"] == "default_ttl"
    assert client.get("/namespaces/users").get_json()["configuration"]["max_ttl"] == 120


@pytest.mark.parametrize("namespace", ["Users", "a:b", "-lead", "x" * 65, "sp ace"])
def test_invalid_namespace_names_are_400(client: FlaskClient, namespace: str) -> None:
    assert client.put(f"/namespaces/{namespace}", json={}).status_code == 400
    assert client.get(f"/namespaces/{namespace}").status_code == 400


def test_namespaces_need_the_admin_scope(app: Flask) -> None:
    writer = authorized_client(app, scope="cache:write stats:read")
    for response in (
        writer.get("/namespaces"),
        writer.get("/namespaces/users"),
        writer.put("/namespaces/users", json={}),
        writer.patch("/namespaces/users", json={}),
        writer.delete("/namespaces/users"),
        writer.post("/namespaces/users/dictionary"),
    ):
        assert response.status_code == 403
        assert response.get_json()["details"]["required_scope"] == "cache:admin"


# Rules applied to entries


def test_default_ttl_per_namespace(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    configure(client, "short", default_ttl=120)
    assert post(client, "k", namespace="short").get_json()["ttl"] == 120
    assert 119_000 < redis_client.pttl(bucket(app, "short", "k").entry("k")) <= 120_000
    assert post(client, "k", namespace="other").get_json()["ttl"] == 3600
    raw = client.put(
        "/cache/r?namespace=short", data=b"\x00", content_type="application/octet-stream"
    )
    assert raw.get_json()["ttl"] == 120
    batch = client.post(
        "/cache/batch-set", json={"namespace": "short", "entries": [{"key": "b", "value": 1}]}
    )
    assert batch.status_code == 200
    assert metadata(client, "b", "short")["ttl"] == 120


def test_no_expiry_only_where_allowed(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    configure(client, "forever", allow_no_expiry=True)
    created = post(client, "k", namespace="forever", ttl=None)
    assert created.status_code == 201
    assert created.get_json()["ttl"] is None
    assert created.get_json()["expires_at"] is None
    assert redis_client.pttl(bucket(app, "forever", "k").entry("k")) == -1
    assert metadata(client, "k", "forever")["ttl_remaining"] is None
    refused = post(client, "k", namespace="default", ttl=None)
    assert refused.status_code == 400
    assert refused.get_json()["details"]["field"] == "ttl"


def test_max_ttl_limits_every_way_of_setting_an_expiry(client: FlaskClient) -> None:
    configure(client, "capped", default_ttl=50, max_ttl=100)
    assert post(client, "ok", namespace="capped", ttl=100).status_code == 201
    over = post(client, "k", namespace="capped", ttl=101)
    assert over.status_code == 400
    assert over.get_json()["details"]["max_ttl"] == 100
    assert post(client, "k", namespace="capped", expires_at=in_future(90)).status_code == 201
    assert post(client, "k", namespace="capped", expires_at=in_future(200)).status_code == 400
    raw = client.put(
        "/cache/r?namespace=capped&ttl=101", data=b"x", content_type="application/octet-stream"
    )
    assert raw.status_code == 400
    batch = client.post(
        "/cache/batch-set",
        json={"namespace": "capped", "entries": [{"key": "b", "value": 1, "ttl": 500}]},
    )
    assert batch.get_json()["total_failed"] == 1

    def patch(body: dict[str, Any]) -> TestResponse:
        return client.patch("/cache/k?namespace=capped", json=body)

    assert patch({"ttl": 101}).status_code == 400
    assert patch({"expires_at": in_future(200)}).status_code == 400
    # k has about 90 s left: 5 more stays under 100, 60 more does not.
    assert patch({"extend_by": 60}).status_code == 400
    assert patch({"extend_by": 5}).status_code == 200
    assert patch({"ttl": 100}).status_code == 200


def test_no_expiry_is_allowed_with_a_max_ttl(client: FlaskClient) -> None:
    configure(client, "both", default_ttl=50, max_ttl=100, allow_no_expiry=True)
    assert post(client, "k", namespace="both", ttl=None).status_code == 201


def test_max_value_bytes_per_namespace(client: FlaskClient) -> None:
    configure(client, "small", max_value_bytes=100)
    value = "x" * 120
    refused = post(client, "k", value, namespace="small", type="string")
    assert refused.status_code == 413
    assert refused.get_json()["error"] == "value_too_large"
    assert refused.get_json()["details"]["max_bytes"] == 100
    assert post(client, "k", value, namespace="other", type="string").status_code == 201
    assert post(client, "k", "y" * 100, namespace="small", type="string").status_code == 201

    def put_raw(size: int) -> TestResponse:
        return client.put(
            "/cache/raw?namespace=small",
            data=b"\x01" * size,
            content_type="application/octet-stream",
        )

    assert put_raw(101).status_code == 413
    assert put_raw(100).status_code == 201
    assert post(client, "l", ["a" * 60, "b" * 60], namespace="small", type="set").status_code == 413
    batch = client.post(
        "/cache/batch-set",
        json={
            "namespace": "small",
            "entries": [{"key": "a", "value": "z" * 200}, {"key": "b", "value": 1}],
        },
    ).get_json()
    assert batch["total_failed"] == 1
    assert batch["entries"][0]["error"]["error"] == "value_too_large"


def test_read_only_namespace_refuses_writes_and_serves_reads(client: FlaskClient) -> None:
    post(client, "k", [1], namespace="frozen", type="list", ttl=60)
    change(client, "frozen", status="read_only")
    writes = [
        post(client, "k", namespace="frozen"),
        post(client, "new", namespace="frozen"),
        client.put("/cache/k?namespace=frozen", data=b"x", content_type="application/octet-stream"),
        client.patch("/cache/k?namespace=frozen", json={"append": [2]}),
        client.delete("/cache/k?namespace=frozen"),
        client.post(
            "/cache/batch-set", json={"namespace": "frozen", "entries": [{"key": "a", "value": 1}]}
        ),
        client.post("/cache/invalidate", json={"namespace": "frozen"}),
    ]
    for response in writes:
        assert response.status_code == 403, response.get_json()
        assert response.get_json()["error"] == "forbidden"
        assert response.get_json()["details"]["status"] == "read_only"
    assert metadata(client, "k", "frozen")["value"] == [1]
    batch = client.post("/cache/batch", json={"namespace": "frozen", "keys": ["k"]})
    assert batch.status_code == 200
    assert batch.get_json()["total_found"] == 1
    change(client, "frozen", status="active")
    assert post(client, "k", namespace="frozen").status_code == 200


def test_disabled_namespace_refuses_reads_too(client: FlaskClient) -> None:
    post(client, "k", namespace="off", ttl=60)
    change(client, "off", status="disabled")
    for response in (
        client.get("/cache/k?namespace=off"),
        client.post("/cache/batch", json={"namespace": "off", "keys": ["k"]}),
        post(client, "k", namespace="off"),
        client.delete("/cache/k?namespace=off"),
    ):
        assert response.status_code == 403
        assert response.get_json()["details"]["status"] == "disabled"
    # Other namespaces are unaffected, and the entry is still there when re-enabled.
    assert post(client, "k", namespace="on").status_code == 201
    change(client, "off", status="active")
    assert metadata(client, "k", "off")["value"] == "v"


# Sliding expiry (short TTLs and one short sleep per test)


def pttl(redis_client: redis.Redis, app: Flask, namespace: str, key: str) -> int:
    remaining: int = redis_client.pttl(bucket(app, namespace, key).entry(key))
    return remaining


def test_sliding_expiry_per_entry(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    post(client, "slides", ttl=3, sliding=True, tags=["t"])
    post(client, "fixed", ttl=3)
    post(client, "items", ["a"], type="list", ttl=3, sliding=True)
    client.put(
        "/cache/raw?ttl=3&sliding=true", data=b"\x00", content_type="application/octet-stream"
    )
    first = metadata(client, "fixed", "default")
    time.sleep(0.6)
    for key in ("slides", "items", "raw"):
        body = metadata(client, key, "default")
        assert body["sliding"] is True
        assert body["ttl"] == 3
        assert body["ttl_remaining"] == 3
        assert pttl(redis_client, app, "default", key) > 2_800
    fixed = metadata(client, "fixed", "default")
    assert fixed["expires_at"] == first["expires_at"]
    assert fixed["ttl_remaining"] == 2
    assert pttl(redis_client, app, "default", "fixed") < 2_500
    where = bucket(app, "default", "slides")
    expiry = int(redis_client.hget(where.entry("slides"), "ex") or 0)
    assert redis_client.zscore(where.index, "slides") == expiry
    assert redis_client.zscore(where.tag("t"), "slides") == expiry
    assert redis_client.pttl(f"{bucket(app, 'default', 'items').prefix}c:items") > 2_800


def test_sliding_expiry_per_namespace(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    configure(client, "sessions", default_ttl=3, refresh_ttl_on_access=True)
    for key in ("single", "batched", "untouched"):
        assert post(client, key, namespace="sessions").status_code == 201
    post(client, "elsewhere", namespace="other", ttl=3)
    time.sleep(0.6)
    assert client.get("/cache/single?namespace=sessions").status_code == 200
    batch = client.post("/cache/batch", json={"namespace": "sessions", "keys": ["batched"]})
    assert batch.get_json()["total_found"] == 1
    assert client.get("/cache/elsewhere?namespace=other").status_code == 200
    assert pttl(redis_client, app, "sessions", "single") > 2_800
    assert pttl(redis_client, app, "sessions", "batched") > 2_800
    assert pttl(redis_client, app, "sessions", "untouched") < 2_500
    assert pttl(redis_client, app, "other", "elsewhere") < 2_500


def test_no_expiry_entries_do_not_slide(
    client: FlaskClient, app: Flask, redis_client: redis.Redis
) -> None:
    configure(client, "keep", allow_no_expiry=True, refresh_ttl_on_access=True)
    post(client, "k", namespace="keep", ttl=None)
    assert metadata(client, "k", "keep")["expires_at"] is None
    assert pttl(redis_client, app, "keep", "k") == -1


# Propagation and Postgres outages


def wait_for(condition: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``condition`` held; fails after ``seconds``."""
    started = time.monotonic()
    while not condition():
        elapsed = time.monotonic() - started
        assert elapsed < seconds, f"not seen within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def test_every_process_sees_a_change_within_five_seconds(make_app: AppFactory) -> None:
    writer_app, other_app = make_app(), make_app()
    writer, other = authorized_client(writer_app), authorized_client(other_app)
    # The other worker has loaded the configurations (none) and started refreshing.
    assert registry(other_app).config("users") == NamespaceConfig()
    assert post(other, "k", namespace="users").status_code == 201
    configure(writer, "users", default_ttl=77, status="read_only")
    wait_for(lambda: registry(other_app).config("users").default_ttl == 77, 5.0)
    assert post(other, "k", namespace="users").status_code == 403
    assert other.get("/namespaces/users").get_json()["configured"] is True
    writer.delete("/namespaces/users")
    wait_for(lambda: registry(other_app).stored("users") is None, 5.0)
    assert post(other, "k", namespace="users").status_code == 200


def test_last_known_configuration_serves_while_postgres_is_down(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(client, "users", max_value_bytes=50, default_ttl=90)
    configure(client, "frozen", status="read_only")
    names = registry(app)
    assert names.refresh() is True
    before = names.config("users")

    def unreachable() -> Any:
        raise psycopg.OperationalError("connection refused (test)")

    monkeypatch.setattr(names.database, "connection", unreachable)
    assert names.refresh() is False
    assert names.config("users") == before
    assert post(client, "big", "x" * 100, namespace="users", type="string").status_code == 413
    assert post(client, "k", namespace="users").get_json()["ttl"] == 90
    assert post(client, "k", namespace="frozen").status_code == 403
    listed = client.get("/namespaces").get_json()["namespaces"]
    assert [item["namespace"] for item in listed] == ["frozen", "users"]
    # Changing a configuration needs Postgres: 503, and nothing changes.
    failed = client.patch("/namespaces/users", json={"default_ttl": 10})
    assert failed.status_code == 503
    assert failed.get_json()["error"] == "service_unavailable"
    assert names.config("users").default_ttl == 90


def test_patches_are_checked_against_the_stored_configuration(
    make_app: AppFactory, database: psycopg.Connection[Any]
) -> None:
    first = authorized_client(make_app())
    stale_app = make_app()
    stale = authorized_client(stale_app)
    gzip_five = {"compression": {"algorithm": "gzip", "level": 5}}
    assert first.put("/namespaces/mixed", json=gzip_five).status_code in (200, 201)
    assert stale_app.extensions["cacheservice"].namespaces.config("mixed").compression.level == 5
    zstd_twenty = {"compression": {"algorithm": "zstd", "level": 20}}
    assert first.patch("/namespaces/mixed", json=zstd_twenty).status_code == 200

    # Valid against the stale copy (gzip 5), invalid against the stored one (zstd 20).
    response = stale.patch("/namespaces/mixed", json={"compression": {"algorithm": "gzip"}})

    assert response.status_code == 400
    stored = first.get("/namespaces/mixed").get_json()["configuration"]["compression"]
    assert (stored["algorithm"], stored["level"]) == ("zstd", 20)
    write = {"key": "k", "value": "x" * 1000, "namespace": "mixed"}
    assert first.post("/cache", json=write).status_code == 201
