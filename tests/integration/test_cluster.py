"""The service on a real Redis Cluster (three masters, three replicas), through the Flask app.

Entries, batches, invalidation, rate limits, sessions and the statistics flush run unchanged on
a cluster: every script touches one slot, so nothing answers CROSSSLOT (a 500). A namespace's
keys spread over more than one master, and a batch costs one pipeline per master involved.
Killing a master loses at most the writes acknowledged just before it (replication is
asynchronous), and the same app instance serves again once the replica is promoted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from cacheservice import create_app
from cacheservice.config import Settings
from cacheservice.db import Database
from cacheservice.metrics import flush
from cacheservice.services import EXTENSION_NAME, Services
from cacheservice.store.keys import KeySpace
from tests.conftest import app_settings
from tests.support.auth import authorized_client
from tests.support.failover import assert_only_the_last_moments_lost, write_through_failover
from tests.support.redis_cluster import RedisCluster
from tests.support.roundtrips import count_round_trips_per_node

# Starts its own Redis, whatever --redis-topology says: run once, on the single-node pass.
pytestmark = pytest.mark.topology_independent

NS = "clu"


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    started = RedisCluster().start()
    yield started
    started.stop()


@pytest.fixture
def raw(cluster: RedisCluster) -> Iterator[Any]:
    cluster.flush_all()
    client = cluster.client()
    yield client
    client.close()


@pytest.fixture
def make_cluster_app(raw: Any, cluster: RedisCluster, database_url: str) -> Iterator[Any]:
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        settings = app_settings(cluster.url, **{"database_url": database_url, **overrides})
        app = create_app(settings)
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions[EXTENSION_NAME].shutdown()


@pytest.fixture
def app(make_cluster_app: Any) -> Flask:
    made: Flask = make_cluster_app()
    return made


@pytest.fixture
def http(app: Flask) -> FlaskClient:
    # A subject of its own per test: rate limit counters never carry over.
    return authorized_client(app, sub=f"tester-{uuid.uuid4().hex[:8]}")


def ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200,)), (response.status_code, response.data)
    return response.get_json()


def batch_set(http: FlaskClient, keys: list[str], tags: list[str] | None = None) -> Any:
    entries = [{"key": key, "value": {"n": key}, "tags": tags or ["batch"]} for key in keys]
    return ok(http.post("/cache/batch-set", json={"namespace": NS, "entries": entries}))


def masters_of(app: Flask, raw: Any, keys: list[str]) -> set[str]:
    keyspace = KeySpace(app.extensions[EXTENSION_NAME].settings.namespace_buckets)
    return {raw.get_node_from_key(keyspace.bucket(NS, key).entry(key)).name for key in keys}


# Single entries


def test_entry_crud_put_and_patch(http: FlaskClient) -> None:
    ok(http.post("/cache", json={"key": "a", "value": {"x": 1}, "namespace": NS}), 201)
    assert ok(http.get(f"/cache/a?namespace={NS}"))["value"] == {"x": 1}
    ok(http.post("/cache", json={"key": "a", "value": [1], "type": "list", "namespace": NS}), 200)
    ok(http.patch(f"/cache/a?namespace={NS}", json={"append": [2, 3]}))
    assert ok(http.get(f"/cache/a?namespace={NS}"))["value"] == [1, 2, 3]
    ok(http.patch(f"/cache/a?namespace={NS}", json={"ttl": 90}))
    meta = ok(http.get(f"/cache/a?namespace={NS}&include_metadata=true"))
    assert meta["ttl"] == 90
    assert meta["hit_count"] >= 1
    raw_put = http.put(
        f"/cache/blob?namespace={NS}", data=b"\x00\x01", content_type="application/octet-stream"
    )
    ok(raw_put, 201)
    ok(http.delete(f"/cache/a?namespace={NS}"))
    assert http.get(f"/cache/a?namespace={NS}").status_code == 404
    assert http.delete(f"/cache/a?namespace={NS}").status_code == 404


# Batches


def test_batch_of_500_spreads_over_masters_and_reads_back(
    app: Flask, http: FlaskClient, raw: Any
) -> None:
    keys = [f"item:{n}" for n in range(500)]
    body = batch_set(http, keys[::2])
    assert body["total_created"] == 250
    assert body["total_failed"] == 0

    found = ok(http.post("/cache/batch", json={"namespace": NS, "keys": keys}))

    assert found["total_found"] == 250
    assert found["missing_keys"] == keys[1::2]
    assert masters_of(app, raw, keys) == {node.name for node in raw.get_primaries()}
    # Where the keys really are, as the servers say.
    holders = {
        node.name for node in raw.get_primaries() if raw.get_redis_connection(node).dbsize() > 0
    }
    assert len(holders) > 1


def test_batch_is_one_pipeline_per_master_involved(app: Flask, http: FlaskClient, raw: Any) -> None:
    keys = [f"item:{n}" for n in range(500)]
    batch_set(http, keys)
    involved = masters_of(app, raw, keys)
    counts = count_round_trips_per_node(app)

    for request in (
        lambda: http.post("/cache/batch", json={"namespace": NS, "keys": keys}),
        lambda: batch_set(http, keys),
    ):
        for trips in counts.values():
            trips.reset()
        response = request()
        assert getattr(response, "status_code", 200) == 200
        data_bursts = {
            name: [burst for burst in trips.bursts if len(burst) > 1]
            for name, trips in counts.items()
        }
        # The rate limit check is one EVALSHA on the limiter key's node; the data is one
        # pipeline of EVALSHAs per master holding some of the keys, and nothing else.
        assert {name for name, bursts in data_bursts.items() if bursts} == involved
        assert all(len(bursts) <= 1 for bursts in data_bursts.values()), data_bursts
        singles = sum(1 for trips in counts.values() for burst in trips.bursts if len(burst) == 1)
        assert singles == 1, {name: trips.bursts for name, trips in counts.items()}
        assert all(set(burst) == {"EVALSHA"} for trips in counts.values() for burst in trips.bursts)


# Invalidation


def test_invalidation_by_tag_pattern_and_namespace_is_exact(http: FlaskClient) -> None:
    batch_set(http, [f"user:{n}" for n in range(300)], tags=["users"])
    batch_set(http, [f"order:{n}" for n in range(200)], tags=["orders"])
    batch_set(http, [f"misc:{n}" for n in range(100)], tags=["misc"])

    by_tag = ok(http.post("/cache/invalidate", json={"namespace": NS, "tags": ["users"]}))
    assert by_tag["total_invalidated"] == 300
    by_pattern = ok(http.post("/cache/invalidate", json={"namespace": NS, "pattern": "order:1*"}))
    assert by_pattern["total_invalidated"] == 1 + 10 + 100  # 1, 10-19, 100-199
    whole = ok(http.post("/cache/invalidate", json={"namespace": NS}))
    assert whole["total_invalidated"] == 200 - 111 + 100

    left = ok(http.post("/cache/batch", json={"namespace": NS, "keys": ["misc:1", "order:5"]}))
    assert left["total_found"] == 0


# Rate limits


def test_rate_limits_are_exact_on_a_cluster(make_cluster_app: Any) -> None:
    app = make_cluster_app(rate_limit_cache="5/minute", rate_limit_batch="3/minute")
    http = authorized_client(app, sub=f"limited-{uuid.uuid4().hex[:8]}")

    cache_statuses = [http.get(f"/cache/k{n}?namespace={NS}").status_code for n in range(6)]
    batch_statuses = [
        http.post("/cache/batch", json={"namespace": NS, "keys": ["a", "b"]}).status_code
        for _ in range(4)
    ]

    assert cache_statuses == [404] * 5 + [429]
    assert batch_statuses == [200] * 3 + [429]


# Sessions


def test_sessions_crud_and_revoke_all(http: FlaskClient, database: psycopg.Connection[Any]) -> None:
    user = str(uuid.uuid4())
    created = [
        ok(http.post("/sessions", json={"user_id": user, "data": {"n": n}}), 201) for n in range(3)
    ]
    first = created[0]["session_id"]
    assert ok(http.get(f"/sessions/{first}"))["data"] == {"n": 0}
    ok(http.patch(f"/sessions/{first}", json={"data": {"m": 1}}))
    assert ok(http.get(f"/sessions/{first}"))["data"] == {"n": 0, "m": 1}
    ok(http.delete(f"/sessions/{first}"))
    assert http.get(f"/sessions/{first}").status_code == 404

    listed = ok(http.get(f"/users/{user}/sessions"))
    assert listed["total"] == 2
    assert ok(http.delete(f"/users/{user}/sessions"))["revoked"] == 2
    for session in created[1:]:
        assert http.get(f"/sessions/{session['session_id']}").status_code == 404


# Statistics, health and the flush


def test_statistics_health_and_entry_stats_flush(
    app: Flask, http: FlaskClient, database_url: str, database: psycopg.Connection[Any]
) -> None:
    keys = [f"s{n}" for n in range(60)]
    batch_set(http, keys)
    hits = Counter({key: 1 + n % 3 for n, key in enumerate(keys)})
    for key, times in hits.items():
        for _ in range(times):
            ok(http.get(f"/cache/{key}?namespace={NS}"))
    services: Services = app.extensions[EXTENSION_NAME]
    services.metrics.push()

    db = Database(Settings(database_url=database_url))
    try:
        report = flush.flush_entry_stats(services.pending, db, services.queries)
        again = flush.flush_entry_stats(services.pending, db, services.queries)
    finally:
        db.close()

    assert report.batches > 0
    assert again.batches == 0
    rows = dict(
        database.execute(
            "SELECT key, hit_count FROM cache_entries WHERE namespace = %s", (NS,)
        ).fetchall()
    )
    assert rows == dict(hits)
    ok(http.get(f"/cache/statistics?namespace={NS}"))
    assert http.get("/cache/health").status_code in (200, 503)
    assert ok(http.get("/cache/health"))["status"] in ("healthy", "degraded")


# Failover


def test_master_failover_during_writes_loses_only_the_last_moments(
    cluster: RedisCluster, app: Flask, raw: Any
) -> None:
    http = authorized_client(app)
    health: dict[str, Any] = {}

    def fail_over() -> None:
        dead = cluster.master_ports()[0]
        cluster.kill(dead)
        # Before the replica takes over, health names the master that does not answer.
        response = http.get("/cache/health")
        health.update(status=response.status_code, body=response.get_json())
        health["dead"] = f"127.0.0.1:{dead}"
        cluster.wait_until_healthy(timeout=20)

    run = write_through_failover(app, NS, fail_over)
    assert_only_the_last_moments_lost(app, NS, run)
    assert health["status"] == 503, health
    section = health["body"]["redis"]
    assert section["status"] == "disconnected"
    states = {node["address"]: node["status"] for node in section["nodes"]}
    assert states[health["dead"]] == "disconnected"
    assert list(states.values()).count("connected") == 2
    # Once the replica serves the slots, every master answers again, without a restart.
    after = http.get("/cache/health")
    assert after.status_code == 200, after.get_json()
    nodes = after.get_json()["redis"]["nodes"]
    assert len(nodes) == 3
    assert all(node["status"] == "connected" for node in nodes)
